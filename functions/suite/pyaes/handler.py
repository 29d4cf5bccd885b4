# Suite function "pyaes" (FunctionBench's pyaes, as run by FaaSnap): AES-CTR encrypt then decrypt
# the input message with a pure-Python AES. The original imported the pyaes package (whose tables
# are literals); this file is Thaw's own AES (FIPS-197, 128/192/256-bit keys, T-table rounds),
# whose tables init computes. Output object: the ciphertext; the decryption must give the input back.
import time

import thaw

# The original benchmark's key (AES-128) and pyaes's default CTR counter: a 128-bit big-endian
# block counter starting at 1.
KEY = b"\xa1\xf6%\x8c\x87}_\xcd\x89dHE8\xbf\xc9,"
INITIAL_COUNTER = 1
BLOCK_BYTES = 16
MASK32 = 0xFFFFFFFF


def _xtime(a):
    a <<= 1
    return a ^ 0x11B if a & 0x100 else a


def _gmul(a, b):
    """Product in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a = _xtime(a)
        b >>= 1
    return out


def _build_sbox():
    """S-box from FIPS-197 5.1.1: multiplicative inverse, then the affine transform. Walks the
    field with p = 3^k and q = 3^-k, so q is p's inverse at every step."""
    sbox = [0] * 256
    p = q = 1
    while True:
        p = p ^ _xtime(p)
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q
        for shift in (1, 2, 3, 4):
            x ^= ((q << shift) | (q >> (8 - shift))) & 0xFF
        sbox[p] = x ^ 0x63
        if p == 1:
            break
    sbox[0] = 0x63
    return sbox


def _rotr8(word):
    return ((word >> 8) | (word << 24)) & MASK32


def _tables(column):
    """The four rotations of a 256-entry table of 32-bit column words."""
    t1 = [_rotr8(w) for w in column]
    t2 = [_rotr8(w) for w in t1]
    t3 = [_rotr8(w) for w in t2]
    return column, t1, t2, t3


SBOX = _build_sbox()
INV_SBOX = [0] * 256
for _i, _s in enumerate(SBOX):
    INV_SBOX[_s] = _i
# Encryption: SubBytes + MixColumns of one byte (coefficients 2, 1, 1, 3 down the column).
TE = _tables([(_gmul(s, 2) << 24) | (s << 16) | (s << 8) | _gmul(s, 3) for s in SBOX])
# Decryption: InvSubBytes + InvMixColumns (14, 9, 13, 11), and InvMixColumns alone for round keys.
TD = _tables([(_gmul(s, 14) << 24) | (_gmul(s, 9) << 16) | (_gmul(s, 13) << 8) | _gmul(s, 11) for s in INV_SBOX])
TU = _tables([(_gmul(x, 14) << 24) | (_gmul(x, 9) << 16) | (_gmul(x, 13) << 8) | _gmul(x, 11) for x in range(256)])


def _sub_word(w):
    return (SBOX[w >> 24] << 24) | (SBOX[(w >> 16) & 255] << 16) | (SBOX[(w >> 8) & 255] << 8) | SBOX[w & 255]


class AES:
    """One AES key: encrypt_block / decrypt_block on 16-byte blocks (FIPS-197)."""

    def __init__(self, key):
        if len(key) not in (16, 24, 32):
            raise ValueError("AES key must be 16, 24 or 32 bytes, not %d" % len(key))
        nk = len(key) // 4
        self.rounds = nr = nk + 6
        w = [int.from_bytes(key[4 * i:4 * i + 4], "big") for i in range(nk)]
        rcon = 1
        for i in range(nk, 4 * (nr + 1)):
            t = w[i - 1]
            if i % nk == 0:
                t = _sub_word(((t << 8) & MASK32) | (t >> 24)) ^ (rcon << 24)
                rcon = _xtime(rcon)
            elif nk > 6 and i % nk == 4:
                t = _sub_word(t)
            w.append(w[i - nk] ^ t)
        self._enc = [w[4 * r:4 * r + 4] for r in range(nr + 1)]
        # Equivalent inverse cipher (FIPS-197 5.3.5): reversed round keys, InvMixColumns on the middle ones.
        u0, u1, u2, u3 = TU
        dec = [self._enc[nr]]
        for r in range(nr - 1, 0, -1):
            dec.append([u0[k >> 24] ^ u1[(k >> 16) & 255] ^ u2[(k >> 8) & 255] ^ u3[k & 255] for k in self._enc[r]])
        dec.append(self._enc[0])
        self._dec = dec

    def encrypt_block(self, block):
        k = self._enc
        t0, t1, t2, t3 = TE
        s0 = int.from_bytes(block[0:4], "big") ^ k[0][0]
        s1 = int.from_bytes(block[4:8], "big") ^ k[0][1]
        s2 = int.from_bytes(block[8:12], "big") ^ k[0][2]
        s3 = int.from_bytes(block[12:16], "big") ^ k[0][3]
        for r in range(1, self.rounds):
            kr = k[r]
            s0, s1, s2, s3 = (
                t0[s0 >> 24] ^ t1[(s1 >> 16) & 255] ^ t2[(s2 >> 8) & 255] ^ t3[s3 & 255] ^ kr[0],
                t0[s1 >> 24] ^ t1[(s2 >> 16) & 255] ^ t2[(s3 >> 8) & 255] ^ t3[s0 & 255] ^ kr[1],
                t0[s2 >> 24] ^ t1[(s3 >> 16) & 255] ^ t2[(s0 >> 8) & 255] ^ t3[s1 & 255] ^ kr[2],
                t0[s3 >> 24] ^ t1[(s0 >> 16) & 255] ^ t2[(s1 >> 8) & 255] ^ t3[s2 & 255] ^ kr[3],
            )
        s = SBOX
        kr = k[self.rounds]
        out = (
            ((s[s0 >> 24] << 24) | (s[(s1 >> 16) & 255] << 16) | (s[(s2 >> 8) & 255] << 8) | s[s3 & 255]) ^ kr[0],
            ((s[s1 >> 24] << 24) | (s[(s2 >> 16) & 255] << 16) | (s[(s3 >> 8) & 255] << 8) | s[s0 & 255]) ^ kr[1],
            ((s[s2 >> 24] << 24) | (s[(s3 >> 16) & 255] << 16) | (s[(s0 >> 8) & 255] << 8) | s[s1 & 255]) ^ kr[2],
            ((s[s3 >> 24] << 24) | (s[(s0 >> 16) & 255] << 16) | (s[(s1 >> 8) & 255] << 8) | s[s2 & 255]) ^ kr[3],
        )
        return b"".join(w.to_bytes(4, "big") for w in out)

    def decrypt_block(self, block):
        k = self._dec
        t0, t1, t2, t3 = TD
        s0 = int.from_bytes(block[0:4], "big") ^ k[0][0]
        s1 = int.from_bytes(block[4:8], "big") ^ k[0][1]
        s2 = int.from_bytes(block[8:12], "big") ^ k[0][2]
        s3 = int.from_bytes(block[12:16], "big") ^ k[0][3]
        for r in range(1, self.rounds):
            kr = k[r]
            s0, s1, s2, s3 = (
                t0[s0 >> 24] ^ t1[(s3 >> 16) & 255] ^ t2[(s2 >> 8) & 255] ^ t3[s1 & 255] ^ kr[0],
                t0[s1 >> 24] ^ t1[(s0 >> 16) & 255] ^ t2[(s3 >> 8) & 255] ^ t3[s2 & 255] ^ kr[1],
                t0[s2 >> 24] ^ t1[(s1 >> 16) & 255] ^ t2[(s0 >> 8) & 255] ^ t3[s3 & 255] ^ kr[2],
                t0[s3 >> 24] ^ t1[(s2 >> 16) & 255] ^ t2[(s1 >> 8) & 255] ^ t3[s0 & 255] ^ kr[3],
            )
        s = INV_SBOX
        kr = k[self.rounds]
        out = (
            ((s[s0 >> 24] << 24) | (s[(s3 >> 16) & 255] << 16) | (s[(s2 >> 8) & 255] << 8) | s[s1 & 255]) ^ kr[0],
            ((s[s1 >> 24] << 24) | (s[(s0 >> 16) & 255] << 16) | (s[(s3 >> 8) & 255] << 8) | s[s2 & 255]) ^ kr[1],
            ((s[s2 >> 24] << 24) | (s[(s1 >> 16) & 255] << 16) | (s[(s0 >> 8) & 255] << 8) | s[s3 & 255]) ^ kr[2],
            ((s[s3 >> 24] << 24) | (s[(s2 >> 16) & 255] << 16) | (s[(s1 >> 8) & 255] << 8) | s[s0 & 255]) ^ kr[3],
        )
        return b"".join(w.to_bytes(4, "big") for w in out)


class CTR:
    """CTR mode as pyaes's AESModeOfOperationCTR: keystream block i = E(counter + i), the counter
    a 128-bit big-endian integer; decryption is the same operation as encryption."""

    def __init__(self, key, initial_counter=INITIAL_COUNTER):
        self._aes = AES(key)
        self._counter = initial_counter

    def crypt(self, data):
        out = []
        encrypt = self._aes.encrypt_block
        counter = self._counter
        for off in range(0, len(data), BLOCK_BYTES):
            chunk = data[off:off + BLOCK_BYTES]
            stream = encrypt(counter.to_bytes(BLOCK_BYTES, "big"))[:len(chunk)]
            counter = (counter + 1) & ((1 << 128) - 1)
            out.append(bytes(a ^ b for a, b in zip(chunk, stream)))
        self._counter = counter
        return b"".join(out)


def handler(event, context):
    t0 = time.perf_counter()
    message = thaw.get(event["input"])
    if message is None:
        raise KeyError("input object %r not found" % event["input"])
    t1 = time.perf_counter()
    ciphertext = CTR(KEY).crypt(message)
    plaintext = CTR(KEY).crypt(ciphertext)
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
        "summary": {"bytes": len(message), "key_bits": len(KEY) * 8, "initial_counter": INITIAL_COUNTER, "round_trip": True},
    }
