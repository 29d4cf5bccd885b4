# Suite function "hello" (FaaSnap's hello): no work beyond the suite's read / write protocol.
# Init imports the modules every suite handler uses and nothing else.
import time

import thaw


def handler(event, context):
    t0 = time.perf_counter()
    data = thaw.get(event["input"])
    if data is None:
        raise KeyError("input object %r not found" % event["input"])
    t1 = time.perf_counter()
    out = data
    t2 = time.perf_counter()
    thaw.put(event["output"], out)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {"bytes": len(out)},
    }
