"""What Chameleon 3.8.1 (2020) needs from Python that Pyodide's CPython 3.14 no longer has.

Chameleon builds its templates' code from `ast.Str`/`ast.Num` nodes (aliases of `ast.Constant`
removed in Python 3.14; restored here as CPython 3.8-3.13 defined them, with the `.s`/`.n`
attributes) and asks `pkg_resources` (setuptools, absent from Pyodide's standard library) for
installed distributions, only to fold their versions into its cache key, and for package file
names. Import this module before `chameleon`; it changes nothing on a Python that has them.
"""
import ast as _ast
import importlib as _importlib
import os as _os
import sys as _sys
import types as _types

if not hasattr(_ast, "Str"):
    _MISSING = object()

    class _ConstantAlias(type):
        """isinstance(node, ast.Str) is true for a Constant holding a str, as in CPython 3.8-3.13."""

        def __instancecheck__(cls, inst):
            if not isinstance(inst, _ast.Constant):
                return False
            value = getattr(inst, "value", _MISSING)
            return isinstance(value, cls._types) and not isinstance(value, cls._not)

    def _new(cls, *args, **kwargs):
        if not args and cls._fields[0] in kwargs:
            args = (kwargs.pop(cls._fields[0]),)
        return _ast.Constant(*args, **kwargs)

    def _alias(name, field, types, not_types=()):
        return _ConstantAlias(name, (_ast.Constant,), {"_fields": (field,), "_types": types, "_not": not_types, "__new__": _new})

    _ast.Num = _alias("Num", "n", (int, float, complex), (bool,))
    _ast.Str = _alias("Str", "s", (str,))
    _ast.Bytes = _alias("Bytes", "s", (bytes,))
    _ast.NameConstant = _alias("NameConstant", "value", (type(None), bool))
    _ast.Ellipsis = _alias("Ellipsis", "value", (type(...),))

    def _get(self):
        return self.value

    def _set(self, value):
        self.value = value

    _ast.Constant.n = property(_get, _set)
    _ast.Constant.s = property(_get, _set)

if "pkg_resources" not in _sys.modules:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        _pr = _types.ModuleType("pkg_resources", "The two pkg_resources functions Chameleon 3.8.1 calls.")

        def _resource_filename(package, name):
            return _os.path.join(_os.path.dirname(_importlib.import_module(package).__file__), name)

        _pr.resource_filename = _resource_filename
        # No distribution metadata is installed: Chameleon's cache key then covers itself only.
        _pr.find_distributions = lambda path, only=False: iter(())
        _sys.modules["pkg_resources"] = _pr
