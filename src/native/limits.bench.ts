// Prints this host's memory limits that decide restore strategies (not a test): memcpy into
// touched memory, fresh page touch, bulk UFFDIO_COPY in 64 KiB chunks, lz4/zstd decode.
// Each figure is the median of 5 runs. Run: node dist/native/limits.bench.js [sizeMiB]

import { decodeGbps, freshTouchGbps, heapLikeImage, memcpyTouchedGbps, uffdBulkCopyGbps } from './host-limits.js';
import { hostPageSizeBytes } from './index.js';

const RUNS = 5;
const MiB = 1024 * 1024;
const sizeBytes = Number(process.argv[2] ?? 256) * MiB;
const PAGE = hostPageSizeBytes();

const fmt = (v: number | string): string => (typeof v === 'number' ? `${v.toFixed(2)} GB/s` : v);
const image = heapLikeImage(Math.min(sizeBytes, 64 * MiB));
const lz4 = decodeGbps('lz4', image, 1, RUNS);
const zstd = decodeGbps('zstd', image, 1, RUNS);
const rows: [string, number | string][] = [
  [`memcpy into touched memory (${sizeBytes / MiB} MiB)`, memcpyTouchedGbps(sizeBytes, RUNS)],
  [`fresh page touch (${sizeBytes / MiB} MiB, ${PAGE} B pages)`, freshTouchGbps(sizeBytes, RUNS)],
  ['bulk UFFDIO_COPY, 64 KiB chunks, from mmap of tmpfs file', uffdBulkCopyGbps(sizeBytes, RUNS, 'mmap')],
  ['bulk UFFDIO_COPY, 64 KiB chunks, through pread buffer', uffdBulkCopyGbps(sizeBytes, RUNS, 'pread')],
  [`lz4 decode (heap-like ${image.length / MiB} MiB, ratio ${lz4.ratio.toFixed(2)})`, lz4.gbps],
  [`zstd-1 decode (heap-like ${image.length / MiB} MiB, ratio ${zstd.ratio.toFixed(2)})`, zstd.gbps],
];
console.log(`host limits, median of ${RUNS} runs (GB/s = 1e9 bytes/s)`);
for (const [name, value] of rows) console.log(`  ${name.padEnd(64)} ${fmt(value)}`);
