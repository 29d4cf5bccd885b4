"""Builds vendor/wordstats-1.0-py3-none-any.whl from wheel-src/ (the wheel is checked in; run this
after changing wheel-src). A wheel is a zip with the package and a .dist-info directory.
build_wheel() is also used by functions/packages-py/make-pyodide-dir.py."""
import base64
import hashlib
import os
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def build_wheel(name, version, files, out_dir, generator="make-wheel.py"):
    """Writes out_dir/<name>-<version>-py3-none-any.whl holding files ({path: bytes}) and its
    .dist-info (METADATA, WHEEL, RECORD); returns the wheel's path."""
    dist = f"{name}-{version}.dist-info"
    files = dict(files)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: true\nTag: py3-none-any\n".encode()
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n" for p, b in files.items()
    ) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    out = os.path.join(out_dir, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p, b in files.items():
            info = zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, b)
    return out


if __name__ == "__main__":
    src = os.path.join(HERE, "wheel-src")
    sources = {}
    for root, _, names in os.walk(src):
        for n in sorted(names):
            if n.endswith(".py"):
                path = os.path.join(root, n)
                sources[os.path.relpath(path, src)] = open(path, "rb").read()
    print(build_wheel("wordstats", "1.0", sources, os.path.join(HERE, "vendor")))
