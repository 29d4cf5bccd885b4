"""Builds vendor/wordstats-1.0-py3-none-any.whl from wheel-src/ (the wheel is checked in; run this
after changing wheel-src). A wheel is a zip with the package and a .dist-info directory."""
import base64
import hashlib
import os
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAME, VERSION = "wordstats", "1.0"
DIST = f"{NAME}-{VERSION}.dist-info"
files = {}
for root, _, names in os.walk(os.path.join(HERE, "wheel-src")):
    for n in sorted(names):
        if n.endswith(".py"):
            path = os.path.join(root, n)
            files[os.path.relpath(path, os.path.join(HERE, "wheel-src"))] = open(path, "rb").read()
files[f"{DIST}/METADATA"] = f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n".encode()
files[f"{DIST}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: make-wheel.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
record = "".join(
    f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n" for p, b in files.items()
) + f"{DIST}/RECORD,,\n"
files[f"{DIST}/RECORD"] = record.encode()
out = os.path.join(HERE, "vendor", f"{NAME}-{VERSION}-py3-none-any.whl")
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for p, b in files.items():
        info = zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, b)
print(out)
