"""Builds a local Pyodide package directory, laid out like a Pyodide release: pyodide-lock.json and
the wheels it lists, with their sha256. Two pure-Python packages made here with zipfile (nothing is
downloaded): `tinybase` (a module and a data file) and `tinyunits`, which depends on it and has a
submodule imported lazily. Usage: python3 make-pyodide-dir.py [OUT_DIR] (default: build/pyodide-packages).

The lock file's `info` is copied from the installed pyodide npm package, so the directory matches the
Pyodide that Thaw runs (a real release's directory does too when its version is the npm package's).
"""
import hashlib
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "build", "pyodide-packages"))
NPM_LOCK = os.path.join(HERE, "..", "..", "node_modules", "pyodide", "pyodide-lock.json")
sys.dont_write_bytecode = True  # keep functions/ free of __pycache__
_spec = importlib.util.spec_from_file_location("make_wheel", os.path.join(HERE, "..", "bundle-py", "make-wheel.py"))
make_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_wheel)

PACKAGES = {
    "tinybase": ("1.0", [], {
        "tinybase/__init__.py": (
            "import os\n"
            "BASE = 10\n"
            "# A token drawn when the package is imported: a guest restored from a snapshot shows the\n"
            "# token of the init the snapshot captured, not a new one.\n"
            "TOKEN = os.urandom(8).hex()\n"
            "def factor():\n"
            "    with open(os.path.join(os.path.dirname(__file__), 'data', 'factor.txt')) as f:\n"
            "        return int(f.read())\n"
        ),
        "tinybase/data/factor.txt": "7\n",
    }),
    "tinyunits": ("2.0", ["tinybase"], {
        "tinyunits/__init__.py": (
            "import tinybase\n"
            "def scale(n):\n"
            "    return n * tinybase.BASE * tinybase.factor()\n"
        ),
        "tinyunits/extra.py": "NAME = 'tinyunits.extra, imported at invoke time'\n",
    }),
}


def wheel(name, version, files):
    """Builds the wheel in OUT with bundle-py's wheel builder; returns its file name and sha256."""
    path = make_wheel.build_wheel(name, version, {p: b.encode() for p, b in files.items()}, OUT, "make-pyodide-dir.py")
    with open(path, "rb") as f:
        return os.path.basename(path), hashlib.sha256(f.read()).hexdigest()


os.makedirs(OUT, exist_ok=True)
with open(NPM_LOCK) as f:
    info = json.load(f)["info"]
packages = {}
for name, (version, depends, files) in PACKAGES.items():
    file_name, sha256 = wheel(name, version, files)
    packages[name] = {
        "name": name, "version": version, "file_name": file_name, "install_dir": "site", "package_type": "package",
        "sha256": sha256, "imports": [name], "depends": depends, "unvendored_tests": False,
    }
with open(os.path.join(OUT, "pyodide-lock.json"), "w") as f:
    json.dump({"info": info, "packages": packages}, f, indent=2)
print(OUT)
