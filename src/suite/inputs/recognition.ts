// Inputs of the suite function "recognition": the synthetic ResNet-style model ("TRN1", about
// 25M float32 parameters, ~100 MB), image sets ("TIMG"), and a forward pass in TypeScript that
// the check compares the function's logits against. Formats: functions/suite/recognition/recognition.c.

import { Prng } from './prng.js';

const HEADER_BYTES = 16;
const OP_BYTES = 16;

/** Layer kinds, as recognition.c numbers them. */
export const OP_CONV = 1;
export const OP_BLOCK = 2;
export const OP_FC = 3;

/** One layer of the network: a 3x3 conv + ReLU, a residual block, or pool + fully connected. */
export interface LayerSpec {
  readonly kind: typeof OP_CONV | typeof OP_BLOCK | typeof OP_FC;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly stride: number;
}

/**
 * The network: a two-conv stem (224 -> 56), six basic residual blocks (64, 128, 256, 512, 512,
 * 1024 channels; 56 -> 4), global average pool and a 1000-class layer. Its parameters sit where
 * ResNet-50's do (~25M); its cost is about 1.3 GMAC per 224x224 image (ResNet-50: ~4 GMAC).
 */
export const RECOGNITION_LAYERS: readonly LayerSpec[] = [
  { kind: OP_CONV, inChannels: 3, outChannels: 32, stride: 2 },
  { kind: OP_CONV, inChannels: 32, outChannels: 64, stride: 2 },
  { kind: OP_BLOCK, inChannels: 64, outChannels: 64, stride: 1 },
  { kind: OP_BLOCK, inChannels: 64, outChannels: 128, stride: 2 },
  { kind: OP_BLOCK, inChannels: 128, outChannels: 256, stride: 2 },
  { kind: OP_BLOCK, inChannels: 256, outChannels: 512, stride: 2 },
  { kind: OP_BLOCK, inChannels: 512, outChannels: 512, stride: 1 },
  { kind: OP_BLOCK, inChannels: 512, outChannels: 1024, stride: 2 },
  { kind: OP_FC, inChannels: 1024, outChannels: 1000, stride: 1 },
];

/** The seed of the published model (object "recognition/model"). */
export const RECOGNITION_MODEL_SEED = 50;

/** A layer with its parameters (views into the model object). */
interface Layer extends LayerSpec {
  readonly w1: Float32Array;
  readonly b1: Float32Array;
  readonly w2?: Float32Array;
  readonly b2?: Float32Array;
  readonly wp?: Float32Array;
  readonly bp?: Float32Array;
}

const hasProjection = (l: LayerSpec): boolean => l.kind === OP_BLOCK && (l.inChannels !== l.outChannels || l.stride !== 1);

/** Parameter tensors of a layer in storage order, as [name, element count]. */
function tensorsOf(l: LayerSpec): Array<[keyof Layer & ('w1' | 'b1' | 'w2' | 'b2' | 'wp' | 'bp'), number]> {
  const { inChannels: i, outChannels: o } = l;
  if (l.kind === OP_FC) return [['w1', o * i], ['b1', o]];
  if (l.kind === OP_CONV) return [['w1', o * i * 9], ['b1', o]];
  const out: Array<['w1' | 'b1' | 'w2' | 'b2' | 'wp' | 'bp', number]> = [['w1', o * i * 9], ['b1', o], ['w2', o * o * 9], ['b2', o]];
  if (hasProjection(l)) out.push(['wp', o * i], ['bp', o]);
  return out;
}

/** Number of parameters of a network. */
export function parameterCount(layers: readonly LayerSpec[]): number {
  return layers.reduce((n, l) => n + tensorsOf(l).reduce((m, [, c]) => m + c, 0), 0);
}

/**
 * The model object: header, layer table, then every parameter as float32. Weights are uniform
 * with He scaling (sqrt(6 / fan-in)), halved on a block's second conv so residual sums stay
 * tame; biases (batch norm folded in) are uniform in [-0.05, 0.05).
 */
export function recognitionModel(seed: number, layers: readonly LayerSpec[] = RECOGNITION_LAYERS): Uint8Array {
  const tableBytes = HEADER_BYTES + layers.length * OP_BYTES;
  const out = new Uint8Array(tableBytes + parameterCount(layers) * 4);
  const head = new Uint32Array(out.buffer, 0, tableBytes / 4);
  out.set(Buffer.from('TRN1', 'latin1'), 0);
  head[1] = 1;
  head[2] = layers.length;
  head[3] = layers[layers.length - 1]?.outChannels ?? 0;
  layers.forEach((l, i) => head.set([l.kind, l.inChannels, l.outChannels, l.stride], 4 + i * 4));
  const params = new Float32Array(out.buffer, tableBytes);
  const rng = new Prng(seed);
  let at = 0;
  for (const l of layers) {
    for (const [name, count] of tensorsOf(l)) {
      const isBias = name.startsWith('b');
      const fanIn = name === 'w2' ? l.outChannels * 9 : l.kind === OP_FC || name === 'wp' ? l.inChannels : l.inChannels * 9;
      const scale = isBias ? 0.05 : Math.sqrt(6 / fanIn) * (name === 'w2' ? 0.5 : 1);
      for (let k = 0; k < count; k++) params[at++] = (rng.u32() / 2147483648 - 1) * scale;
    }
  }
  return out;
}

/** Splits a model object into its layers. Throws when it is not a TRN1 model. */
export function parseModel(model: Uint8Array): Layer[] {
  if (Buffer.from(model.subarray(0, 4)).toString('latin1') !== 'TRN1') throw new Error('not a TRN1 model');
  const view = new DataView(model.buffer, model.byteOffset, model.byteLength);
  const count = view.getUint32(8, true);
  let at = model.byteOffset + HEADER_BYTES + count * OP_BYTES;
  const layers: Layer[] = [];
  for (let i = 0; i < count; i++) {
    const base = HEADER_BYTES + i * OP_BYTES;
    const spec: LayerSpec = {
      kind: view.getUint32(base, true) as LayerSpec['kind'],
      inChannels: view.getUint32(base + 4, true),
      outChannels: view.getUint32(base + 8, true),
      stride: view.getUint32(base + 12, true),
    };
    const tensors: Partial<Record<'w1' | 'b1' | 'w2' | 'b2' | 'wp' | 'bp', Float32Array>> = {};
    for (const [name, n] of tensorsOf(spec)) {
      // The model buffer may not be 4-byte aligned at its byteOffset: copy.
      tensors[name] = new Float32Array(model.buffer.slice(at, at + n * 4));
      at += n * 4;
    }
    const { w1, b1 } = tensors;
    if (!w1 || !b1) throw new Error('model layer without parameters');
    layers.push({ ...spec, ...tensors, w1, b1 });
  }
  return layers;
}

/** An image set: count images of height x width RGB bytes, smooth colour fields plus noise. */
export function recognitionImages(count: number, height: number, width: number, seed: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + count * height * width * 3);
  const view = new DataView(out.buffer);
  out.set(Buffer.from('TIMG', 'latin1'), 0);
  view.setUint32(4, count, true);
  view.setUint32(8, height, true);
  view.setUint32(12, width, true);
  const rng = new Prng(seed);
  let at = HEADER_BYTES;
  for (let n = 0; n < count; n++) {
    const cx = rng.int(width);
    const cy = rng.int(height);
    const tint = [rng.int(256), rng.int(256), rng.int(256)] as const;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const d = Math.abs(x - cx) + Math.abs(y - cy);
        const noise = rng.u32();
        for (let c = 0; c < 3; c++) out[at++] = (tint[c]! + d * (c + 1) + ((noise >>> (8 * c)) & 31)) & 255;
      }
    }
  }
  return out;
}

/** Shape of an image set. Throws when it is not a TIMG set. */
export function imageSetShape(images: Uint8Array): { count: number; height: number; width: number } {
  if (Buffer.from(images.subarray(0, 4)).toString('latin1') !== 'TIMG') throw new Error('not a TIMG image set');
  const view = new DataView(images.buffer, images.byteOffset, images.byteLength);
  return { count: view.getUint32(4, true), height: view.getUint32(8, true), width: view.getUint32(12, true) };
}

const f = Math.fround;

interface Tensor {
  readonly data: Float32Array;
  readonly c: number;
  readonly h: number;
  readonly w: number;
}

/** 3x3 (padding 1) or 1x1 (no padding) convolution; every sum in float32: bias, then ic, ky, kx. */
function conv(x: Tensor, weights: Float32Array, bias: Float32Array, outC: number, stride: number, k: 1 | 3): Tensor {
  const h = Math.floor((x.h - 1) / stride) + 1;
  const w = Math.floor((x.w - 1) / stride) + 1;
  const out = new Float32Array(outC * h * w);
  const pad = k === 3 ? 1 : 0;
  for (let oc = 0; oc < outC; oc++) {
    for (let oy = 0; oy < h; oy++) {
      for (let ox = 0; ox < w; ox++) {
        let acc = bias[oc]!;
        for (let ic = 0; ic < x.c; ic++) {
          for (let ky = 0; ky < k; ky++) {
            const iy = oy * stride + ky - pad;
            if (iy < 0 || iy >= x.h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = ox * stride + kx - pad;
              if (ix < 0 || ix >= x.w) continue;
              acc = f(acc + f(weights[((oc * x.c + ic) * k + ky) * k + kx]! * x.data[(ic * x.h + iy) * x.w + ix]!));
            }
          }
        }
        out[(oc * h + oy) * w + ox] = acc;
      }
    }
  }
  return { data: out, c: outC, h, w };
}

function relu(t: Tensor): Tensor {
  for (let i = 0; i < t.data.length; i++) if (!(t.data[i]! > 0)) t.data[i] = 0;
  return t;
}

/**
 * Logits of every image of a set (images x classes), computed independently of the C function
 * but in the same float32 order, so the two agree to rounding.
 */
export function recognitionForward(model: Uint8Array, images: Uint8Array): Float32Array {
  const layers = parseModel(model);
  const { count, height, width } = imageSetShape(images);
  const classes = layers[layers.length - 1]?.outChannels ?? 0;
  const logits = new Float32Array(count * classes);
  for (let n = 0; n < count; n++) {
    const data = new Float32Array(3 * height * width);
    const base = HEADER_BYTES + n * height * width * 3;
    for (let p = 0; p < height * width; p++) {
      for (let c = 0; c < 3; c++) data[c * height * width + p] = (images[base + p * 3 + c]! - 127.5) / 64;
    }
    let x: Tensor = { data, c: 3, h: height, w: width };
    for (const l of layers) {
      if (l.kind === OP_CONV) {
        x = relu(conv(x, l.w1, l.b1, l.outChannels, l.stride, 3));
      } else if (l.kind === OP_BLOCK) {
        const h1 = relu(conv(x, l.w1, l.b1, l.outChannels, l.stride, 3));
        const y = conv(h1, l.w2!, l.b2!, l.outChannels, 1, 3);
        const sc = l.wp ? conv(x, l.wp, l.bp!, l.outChannels, l.stride, 1) : x;
        for (let i = 0; i < y.data.length; i++) y.data[i] = f(y.data[i]! + sc.data[i]!);
        x = relu(y);
      } else {
        const hw = x.h * x.w;
        const pooled = new Float32Array(x.c);
        for (let c = 0; c < x.c; c++) {
          let s = 0;
          for (let i = 0; i < hw; i++) s = f(s + x.data[c * hw + i]!);
          pooled[c] = f(s / hw);
        }
        for (let k = 0; k < l.outChannels; k++) {
          let s = l.b1[k]!;
          for (let c = 0; c < l.inChannels; c++) s = f(s + f(l.w1[k * l.inChannels + c]! * pooled[c]!));
          logits[n * classes + k] = s;
        }
      }
    }
  }
  return logits;
}
