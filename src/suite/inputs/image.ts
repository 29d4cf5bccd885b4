// Inputs of the suite function "image": seeded synthetic RGB pictures (gradients, shapes and
// noise) encoded as PNG with every filter type, sized to a target file size.

import { encodePng, type RgbImage } from './image-png.js';
import { SuiteRng } from './python-suite-rng.js';

/** Row filter of generated inputs: cycles through all five, so the guest decoder meets each. */
export const inputFilterOfRow = (y: number): number => y % 5;

function picture(seed: number, width: number, height: number): RgbImage {
  const rng = new SuiteRng(seed);
  const pixels = new Uint8Array(width * height * 3);
  const cx = width * (0.3 + 0.4 * rng.next());
  const cy = height * (0.3 + 0.4 * rng.next());
  const radius = Math.min(width, height) * (0.2 + 0.2 * rng.next());
  const hue = rng.int(256);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = (x - cx) ** 2 + (y - cy) ** 2 < radius * radius;
      const noise = rng.int(24) - 12;
      const o = (y * width + x) * 3;
      pixels[o] = (Math.floor((x * 255) / width) + (inside ? hue : 0) + noise) & 255;
      pixels[o + 1] = (Math.floor((y * 255) / height) + noise) & 255;
      pixels[o + 2] = (((x >> 4) ^ (y >> 4)) & 1 ? 200 : 60) + (inside ? 40 : 0) + (noise >> 1);
    }
  }
  return { width, height, pixels };
}

/**
 * A PNG of about `targetBytes` (within a few per cent), 4:3, deterministic for (seed, targetBytes).
 * Sizes the picture from a probe encode, then corrects once.
 */
export function pngInput(seed: number, targetBytes: number): Uint8Array {
  const encodeAt = (width: number): Buffer => encodePng(picture(seed, width, Math.max(1, Math.round((width * 3) / 4))), inputFilterOfRow);
  let width = 128;
  let png = encodeAt(width);
  for (let round = 0; round < 3; round++) {
    width = Math.max(8, Math.round(width * Math.sqrt(targetBytes / png.length)));
    png = encodeAt(width);
  }
  return png;
}
