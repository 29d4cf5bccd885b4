// The worker half of the synchronous Redis bridge (see redis-sync.ts): owns one async
// RedisStore, answers each request on the MessagePort, then wakes the blocked caller.

import { parentPort, workerData } from 'node:worker_threads';
import { toThawError } from '../core/errors.js';
import { exactBytes } from './exact-bytes.js';
import { RedisStore } from './redis-store.js';
import { isBridgeWorkerData, Slot, type BridgeAnswer, type BridgeRequest, type BridgeWorkerData } from './redis-sync-protocol.js';
import { objectStoreError } from './store-error.js';

// Runs only as the bridge's worker entry; anything else importing this file gets no side effect.
if (parentPort !== null && isBridgeWorkerData(workerData)) serve(workerData);

function serve({ url, options, control, port }: BridgeWorkerData): void {
  const slots = new Int32Array(control);
  let store: RedisStore | undefined;
  // One request at a time, in id order, so ANSWERED only ever grows. The caller blocks on each
  // request anyway; a request it gave up on still finishes (bounded by the store's timeouts).
  let queue: Promise<void> = Promise.resolve();

  const handle = async (req: BridgeRequest): Promise<Omit<Extract<BridgeAnswer, { ok: true }>, 'id' | 'ok'>> => {
    if (req.op === 'connect') {
      store ??= await RedisStore.open(url, options);
      return {};
    }
    if (store === undefined) throw objectStoreError('redis', `redis at ${url}: ${req.op} before connect`);
    switch (req.op) {
      case 'get': {
        const value = await store.get(req.key);
        return value === undefined ? {} : { value: exactBytes(value) };
      }
      case 'put':
        await store.put(req.key, req.value);
        return {};
      case 'delete':
        return { removed: await store.delete(req.key) };
      case 'list':
        return { keys: await store.list(req.prefix) };
    }
  };

  const answer = (msg: BridgeAnswer): void => {
    // The value's buffer is ours alone (exactBytes), so it moves without a copy.
    const transfer = msg.ok && msg.value !== undefined ? [msg.value.buffer as ArrayBuffer] : [];
    port.postMessage(msg, transfer);
    Atomics.store(slots, Slot.ANSWERED, msg.id);
    Atomics.notify(slots, Slot.ANSWERED);
  };

  port.on('message', (req: BridgeRequest) => {
    queue = queue.then(async () => {
      try {
        answer({ id: req.id, ok: true, ...(await handle(req)) });
      } catch (err: unknown) {
        answer({ id: req.id, ok: false, error: toThawError(err).toJSON() });
      }
    });
  });

  process.on('exit', () => {
    Atomics.store(slots, Slot.DEAD, 1);
    Atomics.notify(slots, Slot.ANSWERED);
  });
}
