// Test child: tells its parent it is about to prepare snapshot argv[3] under argv[2] with
// strategy argv[4], then prepares it (the parent SIGKILLs it somewhere along the way).

import { readChain } from '../../../snapshot/snapshot-io.js';
import { getStrategy } from '../../index.js';

const [root, id, strategyId] = process.argv.slice(2) as [string, string, string];
const chain = readChain(root, id);
process.send?.('starting', () => {
  for (;;) getStrategy(strategyId).prepare(root, chain);
});
