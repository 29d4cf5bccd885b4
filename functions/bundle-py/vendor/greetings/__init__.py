from .phrases import TEMPLATE


def greet(name):
    return TEMPLATE.format(name=name)
