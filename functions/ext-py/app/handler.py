# A Python function using a compiled package: tinyext, a C extension module built as a Wasm side
# module (make-ext-dir.py). Imported at top level, so the loaded side module, and the counter it
# keeps in its own data, are in the function's snapshot.
import tinyext

AT_INIT = [tinyext.bump() for _ in range(3)]  # 1001, 1002, 1003


def handler(event, context):
    n = event.get("n", 1) if isinstance(event, dict) else 1
    try:
        square = tinyext.square(n)
    except ValueError as e:
        square = str(e)
    return {"square": square, "bump": tinyext.bump(), "atInit": AT_INIT, "file": tinyext.__file__}
