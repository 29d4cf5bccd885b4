// none: the baseline. Idle sandboxes keep all their memory until the keep-alive ends them.

import type { MemoryPolicy } from '../types.js';

export const nonePolicy: MemoryPolicy = {
  id: 'none',
  afterRequest: async () => {},
  onIdle: async () => 'warm',
};
