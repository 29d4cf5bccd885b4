# Suite function "chameleon" (FunctionBench's chameleon, as run by FaaSnap): render the BIGTABLE
# template, a rows x cols HTML table, with the Chameleon library FaaSnap's function imports
# (Debian's python3-chameleon 3.8.1, vendored by scripts/setup.d/15-faasnap-libs.sh and installed
# from the manifest's `requirements`; py314compat restores what it needs from older Pythons).
# The template is compiled to Python code at init, so a snapshot holds the compiled template.
# Input object: JSON {"rows": int, "cols": int}. Output object: the HTML.
import json
import os
import time

import py314compat  # noqa: F401  (before chameleon)
import chameleon
from chameleon import PageTemplate

import thaw

# FaaSnap's (FunctionBench's) BIGTABLE_ZPT, unchanged.
BIGTABLE_ZPT = """\
<table xmlns="http://www.w3.org/1999/xhtml"
xmlns:tal="http://xml.zope.org/namespaces/tal">
<tr tal:repeat="row python: options['table']">
<td tal:repeat="c python: row.values()">
<span tal:define="d python: c + 1"
tal:attributes="class python: 'column-' + str(d)"
tal:content="python: d" />
</td>
</tr>
</table>"""

TEMPLATE = PageTemplate(BIGTABLE_ZPT)
# Chameleon compiles on first use: done here, at init, so the compiled template is in the snapshot.
TEMPLATE.cook_check()
with open(os.path.join(os.path.dirname(chameleon.__file__), ".debian-version"), encoding="ascii") as _f:
    LIBRARY = "chameleon " + _f.read()


def handler(event, context):
    t0 = time.perf_counter()
    raw = thaw.get(event["input"])
    if raw is None:
        raise KeyError("input object %r not found" % event["input"])
    params = json.loads(raw)
    t1 = time.perf_counter()
    rows, cols = params["rows"], params["cols"]
    data = {str(i): i for i in range(cols)}
    table = [data for _ in range(rows)]
    out = TEMPLATE.render(options={"table": table}).encode()
    t2 = time.perf_counter()
    thaw.put(event["output"], out)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {"rows": rows, "cols": cols, "html_bytes": len(out), "library": LIBRARY},
    }
