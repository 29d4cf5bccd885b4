// Test child: restores snapshot argv[3] under argv[2] with strategy argv[4] argv[5] times (each
// restore reads every byte of the memory, as a guest might, then ends like an invocation) and
// prints one JSON line per restore: {outcome: 'identical' | 'differs' | 'refused', code?, page?}
// against the expected memory in file argv[6]. Runs apart from the test because a page server
// that finds a corrupt chunk aborts its process (the guest must never see the bytes).

import { readFileSync } from 'node:fs';
import { PAGE_BYTES } from '../../../core/snapshot-format.js';
import { ThawError } from '../../../core/errors.js';
import { readChain } from '../../../snapshot/snapshot-io.js';
import { getStrategy } from '../../index.js';

const [root, id, strategyId, rounds, expectedPath] = process.argv.slice(2) as [string, string, string, string, string];
const expected = readFileSync(expectedPath);
for (let round = 0; round < Number(rounds); round++) {
  let line: Record<string, unknown>;
  try {
    const image = getStrategy(strategyId).open(root, readChain(root, id));
    try {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
      image.fill(memory);
      const bytes = new Uint8Array(memory.buffer, 0, expected.length);
      let page = -1;
      for (let p = 0; p < expected.length / PAGE_BYTES && page < 0; p++) {
        if (Buffer.compare(bytes.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), expected.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES)) !== 0) page = p;
      }
      image.afterInvoke();
      line = page < 0 ? { outcome: 'identical' } : { outcome: 'differs', page };
    } finally {
      image.release();
    }
  } catch (err: unknown) {
    if (!(err instanceof ThawError)) throw err;
    line = { outcome: 'refused', code: err.code, message: err.message };
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
