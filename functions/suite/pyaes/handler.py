# Suite function "pyaes" (FunctionBench's pyaes, as run by FaaSnap): AES-CTR encrypt then decrypt
# the input message with the pyaes library, the one FaaSnap's function imports (Debian's
# python3-pyaes 1.6.1, vendored by scripts/setup.d/15-faasnap-libs.sh and installed from the
# manifest's `requirements`). Output object: the ciphertext; the decryption must give the input back.
import os
import time

import pyaes

import thaw

# The original benchmark's key (AES-128); pyaes's default CTR counter starts at 1.
KEY = b"\xa1\xf6%\x8c\x87}_\xcd\x89dHE8\xbf\xc9,"
INITIAL_COUNTER = 1
# The vendored library's Debian version (written by the set-up step beside the package).
with open(os.path.join(os.path.dirname(pyaes.__file__), ".debian-version"), encoding="ascii") as _f:
    LIBRARY = "pyaes " + _f.read()


def handler(event, context):
    t0 = time.perf_counter()
    message = thaw.get(event["input"])
    if message is None:
        raise KeyError("input object %r not found" % event["input"])
    t1 = time.perf_counter()
    ciphertext = pyaes.AESModeOfOperationCTR(KEY, pyaes.Counter(INITIAL_COUNTER)).encrypt(message)
    plaintext = pyaes.AESModeOfOperationCTR(KEY, pyaes.Counter(INITIAL_COUNTER)).decrypt(ciphertext)
    if plaintext != message:
        raise ValueError("AES-CTR decryption did not give the message back")
    t2 = time.perf_counter()
    thaw.put(event["output"], ciphertext)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {"bytes": len(message), "key_bits": len(KEY) * 8, "initial_counter": INITIAL_COUNTER, "round_trip": True, "library": LIBRARY},
    }
