# A Python function using packages from a local Pyodide package directory (function.json:
# "packages": ["tinyunits"]; its dependency tinybase comes along). Imported here, at top level,
# so both are in the function's snapshot.
import tinybase
import tinyunits


def handler(event, context):
    from tinyunits import extra  # a submodule imported lazily: read from the mounted packages
    n = event.get("n", 1) if isinstance(event, dict) else 1
    return {"scaled": tinyunits.scale(n), "extra": extra.NAME, "token": tinybase.TOKEN, "from": tinyunits.__file__}
