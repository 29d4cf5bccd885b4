// The restore engine's public surface: the strategy registry with every built-in strategy registered.

import { eager } from './strategies/eager.js';
import { registerStrategy } from './strategy.js';

registerStrategy(eager);

export { getStrategy, listStrategies, registerStrategy } from './strategy.js';
export type { RestoreStrategy, OpenedImage, RestoreStats, Support } from './strategy.js';

/** The strategy used when a request names none. */
export const DEFAULT_STRATEGY = 'eager';
