// Inputs of the suite function "video": raw RGB24 clips (the "RV24" format of
// functions/suite/video/video.c) with a deterministic moving pattern, and the reference flip.

import { Prng } from './prng.js';

const HEADER_BYTES = 16;

/** Shape of a clip. */
export interface ClipShape {
  readonly width: number;
  readonly height: number;
  readonly frames: number;
}

/** A clip: gradients that move from frame to frame, a bright box and seeded noise. */
export function videoClip(shape: ClipShape, seed: number): Uint8Array {
  const { width, height, frames } = shape;
  const out = new Uint8Array(HEADER_BYTES + width * height * frames * 3);
  const view = new DataView(out.buffer);
  out.set(Buffer.from('RV24', 'latin1'), 0);
  view.setUint32(4, width, true);
  view.setUint32(8, height, true);
  view.setUint32(12, frames, true);
  const rng = new Prng(seed);
  let at = HEADER_BYTES;
  for (let f = 0; f < frames; f++) {
    const boxX = (f * 37) % Math.max(1, width - width / 4);
    for (let y = 0; y < height; y++) {
      const noise = rng.u32();
      for (let x = 0; x < width; x++) {
        const inBox = x >= boxX && x < boxX + width / 4 && y >= height / 4 && y < height / 2;
        const n = (noise >>> (x & 15)) & 15;
        out[at++] = inBox ? 250 : (x + f * 8 + n) & 255;
        out[at++] = inBox ? 240 : ((y * 2 + (x >> 3)) + n) & 255;
        out[at++] = inBox ? 20 : ((x ^ y) + f) & 255;
      }
    }
  }
  return out;
}

/** Reads the header of a clip. Throws when it is not an RV24 clip. */
export function clipShape(clip: Uint8Array): ClipShape {
  if (clip.length < HEADER_BYTES || Buffer.from(clip.subarray(0, 4)).toString('latin1') !== 'RV24') throw new Error('not an RV24 clip');
  const view = new DataView(clip.buffer, clip.byteOffset, clip.byteLength);
  return { width: view.getUint32(4, true), height: view.getUint32(8, true), frames: view.getUint32(12, true) };
}

/** The clip with every row's pixels in reverse order (ffmpeg's hflip). */
export function flipClip(clip: Uint8Array): Uint8Array {
  const { width, height, frames } = clipShape(clip);
  const out = new Uint8Array(clip.length);
  out.set(clip.subarray(0, HEADER_BYTES));
  for (let row = 0; row < height * frames; row++) {
    const base = HEADER_BYTES + row * width * 3;
    for (let x = 0; x < width; x++) {
      const from = base + x * 3;
      const to = base + (width - 1 - x) * 3;
      out[to] = clip[from]!;
      out[to + 1] = clip[from + 1]!;
      out[to + 2] = clip[from + 2]!;
    }
  }
  return out;
}
