// Inputs of the suite function "json" (and "compression"): JSON documents of a target size built
// from seeded random records (nested objects, arrays, numbers, booleans, nulls, non-ASCII text).

import { SuiteRng } from './python-suite-rng.js';

const FIRST = ['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Zoë', 'Søren', 'Ælfred', 'Dennis', 'Frances', 'José', 'Łukasz'];
const LAST = ['Lovelace', 'Hopper', 'Torvalds', 'Liskov', 'Thompson', 'Müller', 'Kierkegaard', 'Ritchie', 'Allen', '山田', 'Nuñez'];
const WORDS = ['snapshot', 'restore', 'sandbox', 'memory', 'page', 'fault', 'cold', 'warm', 'start', 'function', 'latency', 'working', 'set', 'prefetch', 'thaw', '☃', 'naïve', 'café'];
const CITIES = ['Lisbon', 'Zürich', 'Kraków', 'São Paulo', 'Tōkyō', 'Reykjavík', 'Montréal', 'Oslo'];

function sentence(rng: SuiteRng, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(rng.pick(WORDS));
  const s = out.join(' ');
  return s.charAt(0).toUpperCase() + s.slice(1) + '.';
}

function record(rng: SuiteRng, id: number): Record<string, unknown> {
  const first = rng.pick(FIRST);
  const last = rng.pick(LAST);
  return {
    id,
    guid: Array.from(rng.bytes(16), (b) => b.toString(16).padStart(2, '0')).join(''),
    isActive: rng.next() < 0.5,
    balance: Math.round(rng.next() * 1e7) / 100,
    age: 18 + rng.int(60),
    name: `${first} ${last}`,
    email: `${first.toLowerCase()}.${id}@example.org`,
    address: { city: rng.pick(CITIES), zip: String(10000 + rng.int(89999)), lat: Math.round((rng.next() * 180 - 90) * 1e6) / 1e6, lon: Math.round((rng.next() * 360 - 180) * 1e6) / 1e6 },
    about: sentence(rng, 8 + rng.int(24)),
    registered: new Date(Date.UTC(2015, 0, 1) + rng.int(3000) * 86_400_000).toISOString(),
    tags: Array.from({ length: 1 + rng.int(6) }, () => rng.pick(WORDS)),
    friends: Array.from({ length: rng.int(4) }, (_, k) => ({ id: k, name: `${rng.pick(FIRST)} ${rng.pick(LAST)}` })),
    score: rng.next() < 0.2 ? null : Math.round(rng.next() * 1e4) / 1e4,
  };
}

/**
 * A compact JSON document of about `targetBytes` UTF-8 bytes (within half a record, ~400 bytes):
 * {"generator": ..., "seed": ..., "records": [...]}.
 */
export function jsonDocument(seed: number, targetBytes: number): Uint8Array {
  const rng = new SuiteRng(seed);
  const head = { generator: 'thaw-suite-json', seed };
  const parts: string[] = [];
  let size = Buffer.byteLength(JSON.stringify({ ...head, records: [] }));
  for (let id = 0; size < targetBytes; id++) {
    const text = JSON.stringify(record(rng, id));
    const grown = size + Buffer.byteLength(text) + (parts.length > 0 ? 1 : 0);
    // Stop at whichever of the two sizes around the target is nearer.
    if (grown > targetBytes && grown - targetBytes > targetBytes - size && parts.length > 0) break;
    parts.push(text);
    size = grown;
  }
  const doc = JSON.stringify({ ...head, records: [] }).replace('"records":[]', `"records":[${parts.join(',')}]`);
  return Buffer.from(doc, 'utf8');
}
