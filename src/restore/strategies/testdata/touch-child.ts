// Test child: restores snapshot argv[3] under argv[2] with strategy argv[4], then reads the pages
// listed in argv[6] (comma-separated), in order, printing {page, same} for each against the
// expected memory in file argv[5]. A page server that finds a bad page aborts this process, so
// the last line printed says how far the guest got.

import { readFileSync } from 'node:fs';
import { PAGE_BYTES } from '../../../core/snapshot-format.js';
import { readChain } from '../../../snapshot/snapshot-io.js';
import { getStrategy } from '../../index.js';

const [root, id, strategyId, expectedPath, pages] = process.argv.slice(2) as [string, string, string, string, string];
const expected = readFileSync(expectedPath);
const image = getStrategy(strategyId).open(root, readChain(root, id));
const memory = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
image.fill(memory);
const bytes = new Uint8Array(memory.buffer, 0, expected.length);
for (const page of pages.split(',').map(Number)) {
  const at = page * PAGE_BYTES;
  const same = Buffer.compare(bytes.subarray(at, at + PAGE_BYTES), expected.subarray(at, at + PAGE_BYTES)) === 0;
  process.stdout.write(`${JSON.stringify({ page, same })}\n`);
}
image.release();
