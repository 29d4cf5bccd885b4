# A Python function as a bundle (docs/python-runtime.md "Bundles"): its own helper module and data
# files (app/), a package directory (vendor/greetings) and a pure-Python wheel (wordstats), all
# imported at top level, so they are inside the function's snapshot.
import os

import greetings
import wordstats
from helpers import shout

# Read at init (so in the snapshot) through a path relative to this file.
with open(os.path.join(os.path.dirname(__file__), "data", "words.txt"), encoding="utf-8") as f:
    WORDS = f.read().split()


def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else str(event)
    # Read at each invocation, relative to the working directory (the bundle's root).
    with open("data/motto.txt", encoding="utf-8") as f:
        motto = f.read().strip()
    return {
        "greeting": shout(greetings.greet(name)),
        "stats": wordstats.stats(WORDS),
        "motto": motto,
        "file": __file__,
    }
