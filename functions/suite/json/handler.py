# Suite function "json" (FunctionBench's json_dumps_loads, as run by FaaSnap): parse the input
# document and serialise it again with indentation. Init imports json.
import json
import time

import thaw


def handler(event, context):
    t0 = time.perf_counter()
    raw = thaw.get(event["input"])
    if raw is None:
        raise KeyError("input object %r not found" % event["input"])
    t1 = time.perf_counter()
    doc = json.loads(raw)
    out = json.dumps(doc, indent=4).encode()
    t2 = time.perf_counter()
    thaw.put(event["output"], out)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {"input_bytes": len(raw), "output_bytes": len(out)},
    }
