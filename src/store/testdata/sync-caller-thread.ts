// Fixture for redis-sync.test.ts: a worker thread standing in for a sandbox host. It uses the
// synchronous Redis store from its own thread, then carries on with async work and reports.

import { parentPort, workerData } from 'node:worker_threads';
import { RedisSyncStore } from '../redis-sync.js';

const { url } = workerData as { url: string };
const store = RedisSyncStore.open(url);
const value = Uint8Array.from({ length: 256 }, (_, i) => 255 - i);
store.put('thread/value', value);
const back = store.get('thread/value');
store.close();
// The thread is not stuck after blocking calls: its event loop still runs timers and messages.
await new Promise((resolve) => setTimeout(resolve, 10));
parentPort?.postMessage({ same: back !== undefined && Buffer.from(back).equals(Buffer.from(value)), continued: true });
