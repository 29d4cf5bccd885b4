# Smallest python function: echoes its event.


def handler(event, context):
    return {"hello": event}
