"""Builds a local Pyodide package directory, laid out like a Pyodide release: pyodide-lock.json and
the wheels it lists, with their sha256. Two pure-Python packages made here with zipfile (nothing is
downloaded): `tinybase` (a module and a data file) and `tinyunits`, which depends on it and has a
submodule imported lazily. Usage: python3 make-pyodide-dir.py [OUT_DIR] (default: build/pyodide-packages).

The lock file's `info` is copied from the installed pyodide npm package, so the directory matches the
Pyodide that Thaw runs (a real release's directory does too when its version is the npm package's).
"""
import base64
import hashlib
import json
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "build", "pyodide-packages"))
NPM_LOCK = os.path.join(HERE, "..", "..", "node_modules", "pyodide", "pyodide-lock.json")

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
    dist = f"{name}-{version}.dist-info"
    files = {p: b.encode() for p, b in files.items()}
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: make-pyodide-dir.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n" for p, b in files.items()
    ) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    file_name = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(OUT, file_name), "w", zipfile.ZIP_DEFLATED) as z:
        for p, b in files.items():
            z.writestr(zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0)), b, zipfile.ZIP_DEFLATED)
    with open(os.path.join(OUT, file_name), "rb") as f:
        return file_name, hashlib.sha256(f.read()).hexdigest()


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
