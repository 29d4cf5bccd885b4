# Suite function "read" (FaaSnap's read): strided reads over a large list that init builds, so the
# list is part of the snapshot and a request touches the pages its stride selects.
# Input object: JSON {"start": int, "stride": int, "count": int}; reads DATA[(start + k*stride) % N].
import json
import time

import thaw

# 16 Mi elements: 64 MiB of 4-byte pointers on wasm32, all to the 256 cached small ints, so the
# list's own pages are the working set. Element i is PATTERN[i % 256] (an odd multiplier makes
# PATTERN a permutation of 0..255); the TS check computes the same values.
LIST_LENGTH = 16 * 1024 * 1024
PATTERN = [(j * 167 + 13) % 256 for j in range(256)]
DATA = PATTERN * (LIST_LENGTH // len(PATTERN))


def handler(event, context):
    t0 = time.perf_counter()
    raw = thaw.get(event["input"])
    if raw is None:
        raise KeyError("input object %r not found" % event["input"])
    params = json.loads(raw)
    t1 = time.perf_counter()
    data = DATA
    n = len(data)
    i = params["start"] % n
    stride = params["stride"]
    count = params["count"]
    total = 0
    for _ in range(count):
        total += data[i]
        i += stride
        if i >= n:
            i %= n
    out = json.dumps({"sum": total, "reads": count}).encode()
    t2 = time.perf_counter()
    thaw.put(event["output"], out)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {"sum": total, "reads": count, "list_length": n},
    }
