// The Python half of the python runtime: the `_thaw_runtime` module run once at boot (before the
// handler's init, so it is inside every snapshot) and the `thaw` module it installs for handlers.

/** Name of the private Python module holding the runtime's entry points. */
export const RUNTIME_MODULE = '_thaw_runtime';

/** Name of the JS object (a property of the guest's `js` globals) that carries the host functions. */
export const HOST_OBJECT = 'thawHost';

/** Status codes returned by `_thaw_runtime.init` and `_thaw_runtime.invoke` (first tuple item). */
export const STATUS = {
  OK: 0,
  /** The handler source does not compile: payload = "<line>: <msg>". */
  SYNTAX: 1,
  /** The handler name is not a callable at module top level. */
  HANDLER_MISSING: 2,
  /** A Python exception: payload = JSON {type, message, where}. */
  ERROR: 3,
  /** MemoryError: payload as for ERROR. */
  OOM: 4,
} as const;

/**
 * Python source of `_thaw_runtime`. Host calls go through `js.thawHost` looked up at call time,
 * so the only JS references Python keeps are paths from the guest's globals object, which Pyodide's
 * snapshot records by path and rebinds on restore.
 */
export const RUNTIME_PY = String.raw`
import json as _json
import sys as _sys
import traceback as _traceback
import types as _types

from pyodide.ffi import to_js as _to_js


def _host():
    import js
    return js.${HOST_OBJECT}


def _get(key):
    """Returns the object stored under key as bytes, or None when there is none."""
    if not isinstance(key, str):
        raise TypeError("thaw.get() key must be str, not %s" % type(key).__name__)
    value = _host().get(key)
    if value is None:
        return None
    return value.to_bytes()


def _put(key, value):
    """Stores bytes (or str, encoded as UTF-8) under key."""
    if not isinstance(key, str):
        raise TypeError("thaw.put() key must be str, not %s" % type(key).__name__)
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("thaw.put() value must be bytes or str, not %s" % type(value).__name__)
    buf = _to_js(memoryview(value))
    _host().put(key, buf)


thaw = _types.ModuleType("thaw", "Thaw host services: the object store.")
thaw.get = _get
thaw.put = _put
_sys.modules["thaw"] = thaw


class Context:
    """What a handler learns about its invocation (second handler argument)."""

    __slots__ = ("function_name", "memory_limit_in_mb", "request_id")

    def __init__(self, function_name, memory_limit_in_mb, request_id):
        self.function_name = function_name
        self.memory_limit_in_mb = memory_limit_in_mb
        self.request_id = request_id

    def __repr__(self):
        return "Context(function_name=%r, memory_limit_in_mb=%r, request_id=%r)" % (
            self.function_name, self.memory_limit_in_mb, self.request_id)


_handler = None


def _describe(exc):
    where = ""
    frames = _traceback.extract_tb(exc.__traceback__)
    if frames:
        f = frames[-1]
        where = 'File "%s", line %d, in %s' % (f.filename, f.lineno, f.name)
    status = ${STATUS.OOM} if isinstance(exc, MemoryError) else ${STATUS.ERROR}
    payload = {"type": type(exc).__name__, "message": str(exc), "where": where}
    return (status, _json.dumps(payload))


def use_bundle(app, site):
    """Puts a bundle's directories on sys.path: the handler's own first, its requirements after the stdlib."""
    _sys.path.insert(0, app)
    _sys.path.append(site)
    return (${STATUS.OK}, "")


def init(source, handler_name, filename="handler.py"):
    """Runs the handler file's top level as module 'handler'. Returns (status, detail)."""
    global _handler
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        return (${STATUS.SYNTAX}, "line %s: %s" % (exc.lineno, exc.msg))
    module = _types.ModuleType("handler")
    module.__file__ = filename
    _sys.modules["handler"] = module
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        return _describe(exc)
    fn = getattr(module, handler_name, None)
    if not callable(fn):
        return (${STATUS.HANDLER_MISSING}, handler_name)
    _handler = fn
    return (${STATUS.OK}, "")


def _encode(result):
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    if isinstance(result, str):
        return result.encode("utf-8")
    return _json.dumps(result).encode("utf-8")


def invoke(data, function_name, memory_limit_in_mb, request_id):
    """Calls the handler once. data: a JS Uint8Array. Returns (status, bytes or detail)."""
    raw = data.to_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:
        event = _json.loads(text)
    except ValueError:
        event = text
    context = Context(function_name, memory_limit_in_mb, request_id)
    try:
        return (${STATUS.OK}, _encode(_handler(event, context)))
    except BaseException as exc:
        return _describe(exc)
`;
