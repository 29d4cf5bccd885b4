// A minimal zip reader for checking the suite function "compression": walks the central directory
// from the end-of-central-directory record and inflates each stored or deflated entry.

import { inflateRawSync } from 'node:zlib';
import { crc32 } from './image-png.js';

/** One file of a zip archive, decompressed and CRC-checked. */
export interface ZipEntry {
  readonly name: string;
  readonly data: Buffer;
  /** 0 = stored, 8 = deflate. */
  readonly method: number;
}

const EOCD_SIG = 0x06054b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

/**
 * Reads every entry of a (non-zip64, single-disk) archive. Throws on anything malformed, and on an
 * archive whose entries inflate to more than `maxTotalBytes` together (a bound against zip bombs in
 * untrusted archives).
 */
export function readZip(archive: Uint8Array, maxTotalBytes = Number.MAX_SAFE_INTEGER): ZipEntry[] {
  let budget = maxTotalBytes;
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('zip: no end-of-central-directory record');
  const count = buf.readUInt16LE(eocd + 10);
  let pos = buf.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(pos) !== CENTRAL_SIG) throw new Error(`zip: bad central directory entry ${n}`);
    const method = buf.readUInt16LE(pos + 10);
    const crc = buf.readUInt32LE(pos + 16);
    const compressedBytes = buf.readUInt32LE(pos + 20);
    const sizeBytes = buf.readUInt32LE(pos + 24);
    const nameLen = buf.readUInt16LE(pos + 28);
    const extraLen = buf.readUInt16LE(pos + 30);
    const commentLen = buf.readUInt16LE(pos + 32);
    const localOffset = buf.readUInt32LE(pos + 42);
    const name = buf.toString('utf8', pos + 46, pos + 46 + nameLen);
    pos += 46 + nameLen + extraLen + commentLen;

    if (buf.readUInt32LE(localOffset) !== LOCAL_SIG) throw new Error(`zip: bad local header for '${name}'`);
    const dataStart = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    const raw = buf.subarray(dataStart, dataStart + compressedBytes);
    let data: Buffer;
    if (method === 0) data = Buffer.from(raw);
    else if (method === 8) data = inflateRawSync(raw, { maxOutputLength: Math.max(1, Math.min(budget, 2 ** 32)) });
    else throw new Error(`zip: '${name}' uses unsupported method ${method}`);
    budget -= data.length;
    if (budget < 0) throw new Error(`zip: the entries inflate to more than ${maxTotalBytes} bytes`);
    if (data.length !== sizeBytes) throw new Error(`zip: '${name}' inflates to ${data.length} bytes, header says ${sizeBytes}`);
    if (crc32(data) !== crc) throw new Error(`zip: '${name}' CRC mismatch`);
    entries.push({ name, data, method });
  }
  return entries;
}
