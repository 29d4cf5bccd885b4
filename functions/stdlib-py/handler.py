# An init-heavy python function: the top level imports eight stdlib modules and builds a few MB of
# data deterministically; the handler replies a digest over that data plus a slice chosen by the event.
import collections
import datetime
import decimal
import hashlib
import json
import random
import re
import statistics

_rng = random.Random(20240601)
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]

RECORDS = [
    {
        "id": i,
        "name": "%s-%05d" % (_rng.choice(_WORDS), i),
        "when": (_EPOCH + datetime.timedelta(minutes=7 * i)).isoformat(),
        "price": decimal.Decimal(_rng.randrange(1, 100000)) / 100,
        "score": _rng.random(),
        "tags": [_rng.choice(_WORDS) for _ in range(4)],
    }
    for i in range(30000)
]
WORD_COUNTS = collections.Counter(tag for r in RECORDS for tag in r["tags"])
NAME_RE = re.compile(r"^(?P<word>[a-z]+)-(?P<num>\d{5})$")
BY_WORD = collections.defaultdict(list)
for _r in RECORDS:
    BY_WORD[NAME_RE.match(_r["name"]).group("word")].append(_r["id"])
SCORE_MEAN = statistics.fmean(r["score"] for r in RECORDS)
SCORE_STDEV = statistics.pstdev(r["score"] for r in RECORDS)
TOTAL_PRICE = sum((r["price"] for r in RECORDS), decimal.Decimal(0))
DIGEST = hashlib.sha256(
    json.dumps([[r["id"], r["name"], r["when"], str(r["price"]), r["tags"]] for r in RECORDS]).encode()
).hexdigest()


def handler(event, context):
    n = 10
    if isinstance(event, dict) and isinstance(event.get("n"), int):
        n = max(0, min(event["n"], 1000))
    word = event.get("word", "alpha") if isinstance(event, dict) else "alpha"
    picked = BY_WORD.get(word, [])[:n]
    h = hashlib.sha256(DIGEST.encode())
    for i in picked:
        h.update(str(RECORDS[i]["price"]).encode())
    return {
        "records": len(RECORDS),
        "digest": DIGEST,
        "picked": picked,
        "pickedDigest": h.hexdigest(),
        "topWords": WORD_COUNTS.most_common(3),
        "scoreMean": round(SCORE_MEAN, 9),
        "scoreStdev": round(SCORE_STDEV, 9),
        "totalPrice": str(TOTAL_PRICE),
        "event": event,
    }
