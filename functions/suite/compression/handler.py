# Suite function "compression" (FunctionBench's compression, as run by FaaSnap): zip the input file
# with deflate. The original wrote the file to disk and ran shutil.make_archive; here the archive is
# built in memory with zipfile (the same deflate work, no filesystem). Init imports zipfile and zlib.
import io
import time
import zipfile
import zlib

import thaw

MEMBER_NAME = "input.json"
# A fixed timestamp keeps the archive bytes identical on every path (zipfile's default is "now").
MEMBER_DATE = (2024, 1, 1, 0, 0, 0)


def handler(event, context):
    t0 = time.perf_counter()
    raw = thaw.get(event["input"])
    if raw is None:
        raise KeyError("input object %r not found" % event["input"])
    t1 = time.perf_counter()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        info = zipfile.ZipInfo(MEMBER_NAME, date_time=MEMBER_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, raw)
    out = buf.getvalue()
    t2 = time.perf_counter()
    thaw.put(event["output"], out)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {
            "input_bytes": len(raw),
            "archive_bytes": len(out),
            "crc32": zlib.crc32(raw),
            "member": MEMBER_NAME,
        },
    }
