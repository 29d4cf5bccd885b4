// `none`: the sandbox is sized at its declared limit; memory faults in as the guest touches it and
// nothing is given back between invocations.

import type { ScalingMechanism, ScalingSession } from './scaling.js';

export const none: ScalingMechanism = {
  id: 'none',
  description: 'sized at the declared limit; pages fault in as touched; nothing given back',
  session(guest): ScalingSession {
    return {
      grant: async () => ({}),
      release: async () => ({ releasedBytes: 0 }),
      grantedBytes: () => guest.declaredBytes,
    };
  },
};
