# Suite function "image" (FunctionBench's image_processing rotate step, as run by FaaSnap): decode
# the input image, rotate it by 90, 180 and 270 degrees counter-clockwise (as PIL's Image.rotate),
# and encode each result. The original used PIL on a JPEG; Pyodide has no PIL offline, so this is a
# minimal pure-Python PNG codec over zlib: RGB, 8 bits, no interlace; decode handles all five
# filter types, encode writes filter type 0. Output object: the three PNGs concatenated (90, 180, 270).
import struct
import time
import zlib

import thaw

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BYTES_PER_PIXEL = 3


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _add_bytes(a, b, n):
    """Bytewise (a + b) mod 256 over n bytes at once: add the low 7 bits of each byte (no carry
    can leave a byte), then set bit 7 from the XOR of both bit 7s and the carry into it."""
    low = int.from_bytes(b"\x7f" * n, "little")
    high = int.from_bytes(b"\x80" * n, "little")
    x = int.from_bytes(a, "little")
    y = int.from_bytes(b, "little")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(n, "little")


def _unfilter(kind, line, prev, bpp):
    """Reverses one scanline's filter in place (line: bytearray; prev: the previous decoded line)."""
    n = len(line)
    if kind == 0:
        return line
    if kind == 1:  # Sub
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 255
        return line
    if kind == 2:  # Up
        return bytearray(_add_bytes(line, prev, n))
    if kind == 3:  # Average
        for i in range(bpp):
            line[i] = (line[i] + (prev[i] >> 1)) & 255
        for i in range(bpp, n):
            line[i] = (line[i] + ((line[i - bpp] + prev[i]) >> 1)) & 255
        return line
    if kind == 4:  # Paeth
        for i in range(bpp):
            line[i] = (line[i] + prev[i]) & 255
        for i in range(bpp, n):
            a = line[i - bpp]
            b = prev[i]
            c = prev[i - bpp]
            p = a + b - c
            pa = p - a if p >= a else a - p
            pb = p - b if p >= b else b - p
            pc = p - c if p >= c else c - p
            if pa <= pb and pa <= pc:
                pred = a
            elif pb <= pc:
                pred = b
            else:
                pred = c
            line[i] = (line[i] + pred) & 255
        return line
    raise ValueError("PNG: unknown filter type %d" % kind)


def png_decode(data):
    """Returns (width, height, pixels) with pixels as row-major RGB bytes."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("PNG: bad signature")
    pos = 8
    header = None
    idat = []
    while True:
        if pos + 12 > len(data):
            raise ValueError("PNG: truncated before IEND")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError("PNG: bad CRC in %r chunk" % kind)
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG: no IHDR")
    width, height, depth, color, compression, filtering, interlace = header
    if (depth, color, compression, filtering, interlace) != (8, 2, 0, 0, 0):
        raise ValueError("PNG: only 8-bit RGB, non-interlaced images are supported")
    raw = zlib.decompress(b"".join(idat))
    stride = width * BYTES_PER_PIXEL
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG: image data is %d bytes, expected %d" % (len(raw), height * (stride + 1)))
    rows = []
    prev = bytes(stride)
    for y in range(height):
        off = y * (stride + 1)
        line = _unfilter(raw[off], bytearray(raw[off + 1:off + 1 + stride]), prev, BYTES_PER_PIXEL)
        rows.append(line)
        prev = line
    return width, height, b"".join(rows)


def png_encode(width, height, pixels):
    """Encodes row-major RGB bytes as a PNG with filter type 0 on every row."""
    stride = width * BYTES_PER_PIXEL
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def _interleave(planes, size):
    out = bytearray(size * BYTES_PER_PIXEL)
    for c, plane in enumerate(planes):
        out[c::BYTES_PER_PIXEL] = plane
    return bytes(out)


def rotate(width, height, pixels, degrees):
    """Rotates counter-clockwise by 90, 180 or 270 degrees; returns (width, height, pixels).
    Works per colour plane with slices: column x of a plane is plane[x::width]."""
    planes = [pixels[c::BYTES_PER_PIXEL] for c in range(BYTES_PER_PIXEL)]
    size = width * height
    if degrees == 180:
        return width, height, _interleave([p[::-1] for p in planes], size)
    if degrees == 90:  # new row i = old column (width-1-i), top to bottom
        rotated = [b"".join(p[width - 1 - i::width] for i in range(width)) for p in planes]
    elif degrees == 270:  # new row i = old column i, bottom to top
        rotated = [b"".join(p[i::width][::-1] for i in range(width)) for p in planes]
    else:
        raise ValueError("rotate: degrees must be 90, 180 or 270")
    return height, width, _interleave(rotated, size)


def handler(event, context):
    t0 = time.perf_counter()
    raw = thaw.get(event["input"])
    if raw is None:
        raise KeyError("input object %r not found" % event["input"])
    t1 = time.perf_counter()
    width, height, pixels = png_decode(raw)
    encoded = []
    for degrees in (90, 180, 270):
        w, h, rotated = rotate(width, height, pixels, degrees)
        encoded.append(png_encode(w, h, rotated))
    out = b"".join(encoded)
    t2 = time.perf_counter()
    thaw.put(event["output"], out)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "process_s": t2 - t1,
        "write_s": t3 - t2,
        "output_key": event["output"],
        "summary": {"width": width, "height": height, "png_bytes": [len(e) for e in encoded]},
    }
