# scaling-py: the memory scaling test function for Python. The top level keeps 8 MiB (what a
# snapshot captures); each invocation allocates the requested MiB as one bytearray plus as many
# small objects, touches them, drops them, and replies a checksum of what it keeps.
import hashlib

KEPT = bytes((i * 13) & 0xFF for i in range(256)) * (8 * 1024 * 4)


def handler(event, context):
    mib = int(event or 32)  # the request is a JSON number (or its text)
    big = bytearray(mib << 20)
    for i in range(0, len(big), 4096):
        big[i] = 1
    small = [str(i) * 8 for i in range(mib * 2000)]
    used = len(big) + len(small)
    del big, small
    return f"kept={hashlib.sha256(KEPT).hexdigest()[:16]} used={used}"
