// A minimal PNG codec for the suite function "image": 8-bit RGB, non-interlaced, all five row
// filters on both sides, so generated inputs exercise every filter of the guest's decoder and its
// outputs can be decoded independently of the guest. Also the reference rotation.

import { deflateSync, inflateSync } from 'node:zlib';

/** A decoded RGB image: row-major, 3 bytes per pixel, no padding. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly pixels: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const BPP = 3;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO-HDLC, as PNG chunks and zip entries use). */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = (CRC_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(kind: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(kind, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

function predictor(kind: number, line: Uint8Array, prev: Uint8Array, i: number): number {
  const a = i >= BPP ? (line[i - BPP] ?? 0) : 0;
  const b = prev[i] ?? 0;
  const c = i >= BPP ? (prev[i - BPP] ?? 0) : 0;
  switch (kind) {
    case 0: return 0;
    case 1: return a;
    case 2: return b;
    case 3: return (a + b) >> 1;
    case 4: return paeth(a, b, c);
    default: throw new Error(`PNG: unknown filter type ${kind}`);
  }
}

/**
 * Encodes an image as PNG.
 * @param filterOfRow filter type (0..4) to use for row y; default 0 on every row.
 */
export function encodePng(img: RgbImage, filterOfRow: (y: number) => number = () => 0): Buffer {
  const stride = img.width * BPP;
  const raw = Buffer.alloc(img.height * (stride + 1));
  let prev: Uint8Array = new Uint8Array(stride);
  for (let y = 0; y < img.height; y++) {
    const line = img.pixels.subarray(y * stride, (y + 1) * stride);
    const kind = filterOfRow(y);
    const off = y * (stride + 1);
    raw[off] = kind;
    for (let i = 0; i < stride; i++) raw[off + 1 + i] = ((line[i] ?? 0) - predictor(kind, line, prev, i)) & 255;
    prev = line;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(img.width, 0);
  ihdr.writeUInt32BE(img.height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}

/**
 * Decodes the PNG starting at `offset` in `data`.
 * @returns the image and the offset just past its IEND chunk.
 * Throws on a bad signature or CRC, an unsupported format, or a wrong data size.
 */
export function decodePngAt(data: Uint8Array, offset = 0): { image: RgbImage; end: number } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!buf.subarray(offset, offset + 8).equals(SIGNATURE)) throw new Error(`PNG at offset ${offset}: bad signature`);
  let pos = offset + 8;
  let width = -1;
  let height = -1;
  const idat: Buffer[] = [];
  for (;;) {
    if (pos + 12 > buf.length) throw new Error('PNG: truncated before IEND');
    const length = buf.readUInt32BE(pos);
    const kind = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + length);
    if (crc32(buf.subarray(pos + 4, pos + 8 + length)) !== buf.readUInt32BE(pos + 8 + length)) throw new Error(`PNG: bad CRC in ${kind} chunk`);
    pos += 12 + length;
    if (kind === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[9] !== 2 || body[10] !== 0 || body[11] !== 0 || body[12] !== 0) throw new Error('PNG: only 8-bit RGB, non-interlaced');
    } else if (kind === 'IDAT') {
      idat.push(body);
    } else if (kind === 'IEND') {
      break;
    }
  }
  if (width < 0) throw new Error('PNG: no IHDR');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * BPP;
  if (raw.length !== height * (stride + 1)) throw new Error(`PNG: image data is ${raw.length} bytes, expected ${height * (stride + 1)}`);
  const pixels = new Uint8Array(height * stride);
  let prev: Uint8Array = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const kind = raw[y * (stride + 1)] ?? 0;
    const line = pixels.subarray(y * stride, (y + 1) * stride);
    for (let i = 0; i < stride; i++) line[i] = ((raw[y * (stride + 1) + 1 + i] ?? 0) + predictor(kind, line, prev, i)) & 255;
    prev = line;
  }
  return { image: { width, height, pixels }, end: pos };
}

/** Decodes every PNG in a concatenation of PNG files. */
export function decodePngSequence(data: Uint8Array): RgbImage[] {
  const out: RgbImage[] = [];
  for (let pos = 0; pos < data.length;) {
    const { image, end } = decodePngAt(data, pos);
    out.push(image);
    pos = end;
  }
  return out;
}

/** Rotates counter-clockwise by 90 degrees (as PIL's Image.rotate(90)): new[i][j] = old[j][width-1-i]. */
export function rotate90(img: RgbImage): RgbImage {
  const { width, height, pixels } = img;
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < width; i++) {
    for (let j = 0; j < height; j++) {
      const src = (j * width + (width - 1 - i)) * BPP;
      out.set(pixels.subarray(src, src + BPP), (i * height + j) * BPP);
    }
  }
  return { width: height, height: width, pixels: out };
}
