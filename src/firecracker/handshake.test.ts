// The handshake parser against the JSON each Firecracker version sends (serde_json output of
// GuestRegionUffdMapping in src/vmm/src/persist.rs at v1.1.0, v1.7.0 and v1.12.0).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ThawError } from '../core/errors.js';
import { parseHandshake } from './handshake.js';

const GiB = 2 ** 30;
// An x86 guest of 4 GiB: 3 GiB below the MMIO gap, 1 GiB above it; offsets accumulate.
const V1_1 = '[{"base_host_virt_addr":139637976727552,"size":3221225472,"offset":0},{"base_host_virt_addr":139641271418880,"size":1073741824,"offset":3221225472}]';
const V1_7 = '[{"base_host_virt_addr":139637976727552,"size":3221225472,"offset":0,"page_size_kib":4096},{"base_host_virt_addr":139641271418880,"size":1073741824,"offset":3221225472,"page_size_kib":4096}]';
const V1_12 = '[{"base_host_virt_addr":139637976727552,"size":3221225472,"offset":0,"page_size":4096,"page_size_kib":4096},{"base_host_virt_addr":139641271418880,"size":1073741824,"offset":3221225472,"page_size":4096,"page_size_kib":4096}]';

function refused(body: string, memoryBytes: number, says: RegExp): void {
  assert.throws(() => parseHandshake(body, memoryBytes), (e: unknown) => e instanceof ThawError && e.code === 'THAW_REQUEST_INVALID' && says.test(e.message));
}

describe('Firecracker handshake', () => {
  for (const [version, body] of [['1.1', V1_1], ['1.7', V1_7], ['1.12', V1_12]] as const) {
    it(`accepts v${version}'s two-region x86 layout`, () => {
      const regions = parseHandshake(body, 4 * GiB);
      assert.deepEqual(regions.map((r) => [r.base, r.size, r.offset, r.pageSize]), [
        [139637976727552n, 3 * GiB, 0, 4096],
        [139641271418880n, GiB, 3 * GiB, 4096],
      ]);
    });
  }

  it('refuses what Firecracker would never send', () => {
    refused('', GiB, /not JSON/);
    refused('{}', GiB, /non-empty JSON array/);
    refused('[]', GiB, /non-empty JSON array/);
    refused('[{"base_host_virt_addr":4096,"size":4096}]', GiB, /offset must be a non-negative integer/);
    refused('[{"base_host_virt_addr":4096,"size":4096,"offset":0,"extra":1}]', GiB, /unknown field "extra"/);
    refused('[{"base_host_virt_addr":4097,"size":4096,"offset":0}]', GiB, /multiples of 4096/);
    refused('[{"base_host_virt_addr":4096,"size":8192,"offset":0,"page_size":4096,"page_size_kib":2097152}]', GiB, /differ/);
    refused(V1_12, 4 * GiB - 4096, /past the end of the .* memory file/);
    refused('[{"base_host_virt_addr":4096,"size":8192,"offset":0},{"base_host_virt_addr":8192,"size":4096,"offset":8192}]', GiB, /overlap in the VMM's address space/);
    refused('[{"base_host_virt_addr":4096,"size":8192,"offset":0},{"base_host_virt_addr":65536,"size":4096,"offset":4096}]', GiB, /overlap in the memory file/);
  });
});
