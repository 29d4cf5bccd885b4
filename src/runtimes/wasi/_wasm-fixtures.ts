// Test support for the wasi runtime: locates the example functions under functions/ and builds
// tiny modules byte by byte, so tests need no WAT toolchain. Not part of the runtime's surface.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FunctionParams } from '../../core/function-spec.js';
import { encodeU32 } from './wasm-binary.js';

/** Repository root (this file runs from dist/runtimes/wasi/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** One expected invocation from functions/<name>/testdata/expected.json. */
export interface ExpectedCase {
  readonly input: string;
  readonly output?: string;
  readonly error?: string;
}

/** An example function: its manifest (as FunctionParams), module bytes and expected cases. */
export interface ExampleFunction {
  readonly fn: FunctionParams;
  readonly built: boolean;
  readonly cases: readonly ExpectedCase[];
  bytes(): Uint8Array;
}

/** Loads functions/<name>: function.json, testdata/expected.json and the built module. */
export function exampleFunction(name: string): ExampleFunction {
  const dir = `${REPO_ROOT}functions/${name}/`;
  const manifest = JSON.parse(readFileSync(`${dir}function.json`, 'utf8')) as { module: string; memoryMiB: number; handler: string };
  const artefactPath = dir + manifest.module;
  return {
    fn: Object.freeze({
      name, runtime: 'wasi', artefactPath, memoryMiB: manifest.memoryMiB, handler: manifest.handler,
      timeoutMs: 30_000, initTimeoutMs: 60_000, maxInputBytes: 1 << 20, maxOutputBytes: 1 << 20, description: '',
    }),
    built: existsSync(artefactPath),
    cases: JSON.parse(readFileSync(`${dir}testdata/expected.json`, 'utf8')) as ExpectedCase[],
    bytes: () => new Uint8Array(readFileSync(artefactPath)),
  };
}

/** Skip reason for tests that need the built example functions. */
export function needsBuild(...fns: ExampleFunction[]): string | false {
  return fns.every((f) => f.built) ? false : 'example functions not built: run bash scripts/setup.d/10-functions.sh';
}

/** Bytes helpers for hand-built modules. */
export const HEADER = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);

export function bytesOf(...parts: (Uint8Array | number[])[]): Uint8Array {
  const arrays = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

export function name(text: string): Uint8Array {
  const b = new TextEncoder().encode(text);
  return bytesOf(encodeU32(b.length), b);
}

export function section(id: number, ...content: (Uint8Array | number[])[]): Uint8Array {
  const body = bytesOf(...content);
  return bytesOf([id], encodeU32(body.length), body);
}

/** A whole module from its sections. */
export function moduleOf(...sections: Uint8Array[]): Uint8Array {
  return bytesOf(HEADER, ...sections);
}

/** Type section with the given function types, each as [params, results] of value-type bytes. */
export function typeSection(...types: [number[], number[]][]): Uint8Array {
  return section(1, encodeU32(types.length), ...types.map(([p, r]) => bytesOf([0x60], encodeU32(p.length), p, encodeU32(r.length), r)));
}

export const I32 = 0x7f;
