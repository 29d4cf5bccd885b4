# Suite function "chameleon" (FunctionBench's chameleon, as run by FaaSnap): render the BIGTABLE
# template, a rows x cols HTML table. The original used the Chameleon package (TAL templates compiled
# to Python code); Pyodide has no Chameleon offline, so this file carries a small engine of its own
# that compiles the template to a Python function the same way, at init.
# Input object: JSON {"rows": int, "cols": int}. Output object: the HTML.
import html
import json
import re
import time

import thaw

# The BIGTABLE template in this engine's syntax: ${expr} inserts escaped text, {% for x in expr %}
# ... {% endfor %} repeats, {% set x = expr %} binds (as tal:repeat, tal:content, tal:define).
BIGTABLE = """\
<table xmlns="http://www.w3.org/1999/xhtml">
{% for row in table %}<tr>
{% for c in row.values() %}{% set d = c + 1 %}<td><span class="column-${str(d)}">${d}</span></td>
{% endfor %}</tr>
{% endfor %}</table>
"""

_TOKEN = re.compile(r"\$\{(.*?)\}|\{%\s*(.*?)\s*%\}", re.S)
_FOR = re.compile(r"for\s+([A-Za-z_]\w*)\s+in\s+(.+)$", re.S)
_SET = re.compile(r"set\s+([A-Za-z_]\w*)\s*=\s*(.+)$", re.S)


class TemplateSyntaxError(ValueError):
    pass


def compile_template(source, parameters, name="<template>"):
    """Compiles a template to a Python function render(**parameters) -> str; the template's
    expressions see the parameters as local variables."""
    lines = ["def render(_escape, _str, %s):" % ", ".join(parameters), "    _out = []", "    _append = _out.append"]
    depth = 1
    pos = 0
    for m in _TOKEN.finditer(source):
        if m.start() > pos:
            lines.append("    " * depth + "_append(%r)" % source[pos:m.start()])
        pos = m.end()
        expr, stmt = m.group(1), m.group(2)
        if expr is not None:
            compile(expr, name, "eval")
            lines.append("    " * depth + "_append(_escape(_str(%s)))" % expr)
        elif stmt == "endfor":
            depth -= 1
            if depth < 1:
                raise TemplateSyntaxError("%s: {%% endfor %%} without a {%% for %%}" % name)
        elif _FOR.match(stmt):
            var, iterable = _FOR.match(stmt).groups()
            compile(iterable, name, "eval")
            lines.append("    " * depth + "for %s in %s:" % (var, iterable))
            depth += 1
        elif _SET.match(stmt):
            var, value = _SET.match(stmt).groups()
            compile(value, name, "eval")
            lines.append("    " * depth + "%s = %s" % (var, value))
        else:
            raise TemplateSyntaxError("%s: unknown statement {%% %s %%}" % (name, stmt))
    if depth != 1:
        raise TemplateSyntaxError("%s: %d {%% for %%} left open" % (name, depth - 1))
    if pos < len(source):
        lines.append("    _append(%r)" % source[pos:])
    lines.append("    return ''.join(_out)")
    namespace = {}
    exec(compile("\n".join(lines), name, "exec"), namespace)
    render = namespace["render"]

    def bound(**variables):
        return render(html.escape, str, **variables)

    return bound


RENDER_BIGTABLE = compile_template(BIGTABLE, ["table"], "bigtable")


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
    out = RENDER_BIGTABLE(table=table).encode()
    t2 = time.perf_counter()
    thaw.put(event["output"], out)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {"rows": rows, "cols": cols, "html_bytes": len(out)},
    }
