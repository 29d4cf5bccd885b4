"""Builds a local Pyodide package directory holding one compiled package, `tinyext`: tinyext.c built
as a Wasm side module (a .so with a dylink.0 section) with Debian's clang and wasm-ld, in a wheel
tagged for the Pyodide that Thaw runs (cp314-cp314-pyemscripten_<abi>_wasm32), and its
pyodide-lock.json entry with the sha256. Usage: python3 make-ext-dir.py [OUT_DIR [SO_FILE]]
(default: build/pyodide-packages; SO_FILE: put that file in the wheel instead, for tests of what
deploy refuses). Needs clang and lld (scripts/setup.d installs them)."""
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "build", "pyodide-packages"))
NPM_LOCK = os.path.join(HERE, "..", "..", "node_modules", "pyodide", "pyodide-lock.json")
NAME, VERSION = "tinyext", "1.0"


def build_so(tmp):
    obj, so = os.path.join(tmp, "tinyext.o"), os.path.join(tmp, "tinyext.so")
    subprocess.run(["clang", "--target=wasm32-unknown-emscripten", "-O2", "-fPIC", "-fvisibility=hidden", "-nostdlib",
                    "-c", os.path.join(HERE, "tinyext.c"), "-o", obj], check=True)
    subprocess.run(["wasm-ld", "--experimental-pic", "-shared", "--no-entry", "-o", so, obj], check=True)
    with open(so, "rb") as f:
        return f.read()


def build_wheel(tag, so):
    dist = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}.so": so,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode(),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: make-ext-dir.py\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }
    files[f"{dist}/RECORD"] = ("".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n" for p, b in files.items()
    ) + f"{dist}/RECORD,,\n").encode()
    path = os.path.join(OUT, f"{NAME}-{VERSION}-{tag}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, b in files.items():
            z.writestr(zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0)), b, zipfile.ZIP_DEFLATED)
    return path


os.makedirs(OUT, exist_ok=True)
with open(NPM_LOCK) as f:
    info = json.load(f)["info"]
cp = "cp" + "".join(info["python"].split(".")[:2])
tag = f"{cp}-{cp}-pyemscripten_{info['abi_version']}_wasm32"
if len(sys.argv) > 2:
    with open(sys.argv[2], "rb") as f:
        wheel = build_wheel(tag, f.read())
else:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(tag, build_so(tmp))
with open(wheel, "rb") as f:
    sha256 = hashlib.sha256(f.read()).hexdigest()
lock = {"info": info, "packages": {NAME: {
    "name": NAME, "version": VERSION, "file_name": os.path.basename(wheel), "install_dir": "site", "package_type": "package",
    "sha256": sha256, "imports": [NAME], "depends": [], "unvendored_tests": False,
}}}
with open(os.path.join(OUT, "pyodide-lock.json"), "w") as f:
    json.dump(lock, f, indent=2)
print(OUT)
