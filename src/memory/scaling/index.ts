// The scaling mechanisms by id.

import { ThawError } from '../../core/errors.js';
import { balloon } from './balloon.js';
import { faascale } from './faascale.js';
import { none } from './none.js';
import { SCALING_IDS, type ScalingId, type ScalingMechanism } from './scaling.js';

const MECHANISMS: Readonly<Record<ScalingId, ScalingMechanism>> = { none, balloon, faascale };

export function getScaling(id: string): ScalingMechanism {
  const m = (MECHANISMS as Record<string, ScalingMechanism | undefined>)[id];
  if (m === undefined) throw new ThawError('THAW_CONFIG_INVALID', { detail: `unknown scaling mechanism '${id}' (expected one of ${SCALING_IDS.join(', ')})` });
  return m;
}

export function listScaling(): ScalingMechanism[] {
  return SCALING_IDS.map((id) => MECHANISMS[id]);
}

export * from './scaling.js';
