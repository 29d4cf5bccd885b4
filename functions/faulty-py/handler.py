# A python function that fails on request: {"raise": true} raises ValueError from a helper.


def _check(event):
    if isinstance(event, dict) and event.get("raise") is True:
        raise ValueError("asked to raise: %r" % (event,))


def handler(event, context):
    _check(event)
    return {"ok": True, "event": event}
