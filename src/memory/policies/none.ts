// The `none` memory policy: nothing is offloaded; a sandbox keeps every page it touched until it
// expires. The baseline every other policy's memory is compared with.

import type { MemoryPolicy, PolicySandbox } from '../types.js';

export class NonePolicy implements MemoryPolicy {
  readonly id = 'none';

  async afterInit(_s: PolicySandbox): Promise<void> {}

  async afterRequest(_s: PolicySandbox, _requestsServed: number): Promise<void> {}

  async onIdle(_s: PolicySandbox, _idleMs: number, _reuseP99Ms: number): Promise<'warm' | 'semi-warm'> {
    return 'warm';
  }
}
