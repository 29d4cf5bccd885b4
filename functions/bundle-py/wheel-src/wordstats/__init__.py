"""A tiny pure-Python package shipped as a wheel (functions/bundle-py/make-wheel.py)."""
from collections import Counter

__version__ = "1.0"


def stats(words):
    counts = Counter(words)
    top, n = counts.most_common(1)[0]
    return {"words": len(words), "distinct": len(counts), "top": top, "top_count": n}
