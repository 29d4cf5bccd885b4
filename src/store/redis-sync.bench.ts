// Micro-benchmark of the synchronous Redis bridge: latency of one blocking get() of 1 KiB and
// 1 MiB through RedisSyncStore against a throwaway local redis-server. Prints raw percentiles.
// Run: node dist/store/redis-sync.bench.js

import { RedisSyncStore } from './redis-sync.js';
import { startRedisServer } from './testing/redis-server.js';

const SIZES_BYTES = [1024, 1 << 20];
const WARMUP_COUNT = 50;

const server = await startRedisServer();
const store = RedisSyncStore.open(server.url);
try {
  for (const sizeBytes of SIZES_BYTES) {
    const key = `bench/${sizeBytes}`;
    store.put(key, new Uint8Array(sizeBytes).fill(7));
    for (let i = 0; i < WARMUP_COUNT; i++) store.get(key);
    const sampleCount = sizeBytes >= 1 << 20 ? 500 : 5000;
    const latenciesUs: number[] = [];
    for (let i = 0; i < sampleCount; i++) {
      const start = performance.now();
      store.get(key);
      latenciesUs.push((performance.now() - start) * 1000);
    }
    latenciesUs.sort((a, b) => a - b);
    const at = (q: number): string => (latenciesUs[Math.min(sampleCount - 1, Math.floor(q * sampleCount))] ?? NaN).toFixed(0);
    console.log(`sync get ${sizeBytes} B: n=${sampleCount} p50=${at(0.5)}us p90=${at(0.9)}us p99=${at(0.99)}us min=${at(0)}us`);
  }
} finally {
  store.close();
  await server.stop();
}
