// A generator of random valid WebAssembly modules for the Wasm fuzz tests: types, WASI imports,
// a table, at most one memory, globals of every snapshot type, function bodies mixing the
// instructions the grow instrumentation must step over (memargs, constants whose bytes look like
// opcodes, br_table, SIMD, bulk memory, typed select), exports, custom sections anywhere, and
// optionally non-minimal LEB128 sizes and counts (valid, and what some linkers emit).

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { REPO_ROOT } from '../../runtimes/wasi/_wasm-fixtures.js';

const I32 = 0x7f;
const I64 = 0x7e;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;

/** Types every module declares: 0 () -> (), 1 () -> i32 (the handler), 2 (i32 x4) -> i32 (WASI fd_write). */
const BASE_TYPES: readonly [number[], number[]][] = [[[], []], [[], [I32]], [[I32, I32, I32, I32], [I32]]];

function leb(value: number, pad: boolean): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0 || (pad && out.length < 4)) byte |= 0x80;
    out.push(byte);
  } while (v !== 0 || (pad && out.length < 5));
  // A padded encoding ends with a byte without the continuation bit.
  if (pad) out[out.length - 1]! &= 0x7f;
  return out;
}

function sleb(value: bigint): number[] {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function utf8Name(s: string, pad: boolean): number[] {
  const b = [...Buffer.from(s, 'utf8')];
  return [...leb(b.length, pad), ...b];
}

/** One stack-neutral statement of a function body (defined as byte builders over the module's facts). */
type Stmt =
  | { k: 'i32'; v: number } | { k: 'i64'; v: bigint } | { k: 'f32'; bits: number } | { k: 'f64'; v: number }
  | { k: 'load'; op: number; align: number; offset: number } | { k: 'store'; offset: number }
  | { k: 'grow'; pages: number } | { k: 'size' } | { k: 'fill' } | { k: 'copy' }
  | { k: 'block'; body: Stmt[] } | { k: 'loop'; body: Stmt[] } | { k: 'if'; c: number; then: Stmt[]; else: Stmt[] }
  | { k: 'blockResult'; v: number } | { k: 'brTable'; labels: number; pick: number }
  | { k: 'globalGet'; g: number } | { k: 'globalSet'; g: number } | { k: 'call'; f: number } | { k: 'callIndirect' }
  | { k: 'v128'; bytes: number[] } | { k: 'v128load' } | { k: 'lane' } | { k: 'refNull' } | { k: 'select'; typed: boolean }
  | { k: 'local'; l: number } | { k: 'truncSat' } | { k: 'nop' };

interface GlobalSpec { readonly type: number; readonly mutable: boolean; readonly init: number }
interface MemorySpec { readonly min: number; readonly max: number | undefined; readonly imported: boolean }

/** The random choices a module is built from. */
export interface ModuleSpec {
  readonly wasiImports: number;
  readonly importedGlobal: boolean;
  readonly memory: MemorySpec | null;
  readonly table: boolean;
  readonly globals: readonly GlobalSpec[];
  readonly bodies: readonly { readonly locals: number; readonly stmts: readonly Stmt[] }[];
  readonly exportMemoryAs: string | null;
  readonly exportGlobals: readonly number[];
  readonly funcNamedMemory: boolean;
  readonly customAt: readonly { readonly before: number; readonly name: string; readonly bytes: Uint8Array }[];
  readonly start: boolean;
  readonly pad: boolean;
}

const stmtArb: fc.Arbitrary<Stmt> = fc.letrec<{ stmt: Stmt; list: Stmt[] }>((tie) => ({
  stmt: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ k: fc.constant('i32' as const), v: fc.oneof(fc.integer(), fc.constantFrom(0x40, 0x3f, -64, 0x4000, 0x20_0000)) }),
    fc.record({ k: fc.constant('i64' as const), v: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) }),
    fc.record({ k: fc.constant('f32' as const), bits: fc.oneof(fc.nat({ max: 0xffff_ffff }), fc.constant(0x40404040)) }),
    fc.record({ k: fc.constant('f64' as const), v: fc.double() }),
    fc.record({ k: fc.constant('load' as const), op: fc.constantFrom(0x28, 0x2c, 0x2d, 0x2e, 0x2f), align: fc.nat(2), offset: fc.oneof(fc.nat(0x100), fc.constant(0x40)) }),
    fc.record({ k: fc.constant('store' as const), offset: fc.nat(0x80) }),
    fc.record({ k: fc.constant('grow' as const), pages: fc.nat(3) }),
    fc.constant({ k: 'size' as const }), fc.constant({ k: 'fill' as const }), fc.constant({ k: 'copy' as const }),
    fc.record({ k: fc.constant('block' as const), body: tie('list') }),
    fc.record({ k: fc.constant('loop' as const), body: tie('list') }),
    fc.record({ k: fc.constant('if' as const), c: fc.nat(1), then: tie('list'), else: tie('list') }),
    fc.record({ k: fc.constant('blockResult' as const), v: fc.integer() }),
    fc.record({ k: fc.constant('brTable' as const), labels: fc.nat(4), pick: fc.nat(5) }),
    fc.record({ k: fc.constant('globalGet' as const), g: fc.nat() }), fc.record({ k: fc.constant('globalSet' as const), g: fc.nat() }),
    fc.record({ k: fc.constant('call' as const), f: fc.nat() }), fc.constant({ k: 'callIndirect' as const }),
    fc.record({ k: fc.constant('v128' as const), bytes: fc.array(fc.nat(255), { minLength: 16, maxLength: 16 }) }),
    fc.constant({ k: 'v128load' as const }), fc.constant({ k: 'lane' as const }), fc.constant({ k: 'refNull' as const }),
    fc.record({ k: fc.constant('select' as const), typed: fc.boolean() }), fc.record({ k: fc.constant('local' as const), l: fc.nat() }),
    fc.constant({ k: 'truncSat' as const }), fc.constant({ k: 'nop' as const }),
  ),
  list: fc.array(tie('stmt'), { maxLength: 4 }),
})).stmt;

const globalArb: fc.Arbitrary<GlobalSpec> = fc.record({ type: fc.constantFrom(I32, I64, F32, F64, V128), mutable: fc.boolean(), init: fc.integer() });

export const moduleSpecArb: fc.Arbitrary<ModuleSpec> = fc.record({
  wasiImports: fc.nat(2),
  importedGlobal: fc.boolean(),
  memory: fc.option(fc.record({
    min: fc.nat(4), extra: fc.option(fc.nat(60), { nil: undefined }), imported: fc.boolean(),
  }).map(({ min, extra, imported }) => ({ min, max: extra === undefined ? undefined : min + extra, imported })), { nil: null }),
  table: fc.boolean(),
  globals: fc.array(globalArb, { maxLength: 5 }),
  bodies: fc.array(fc.record({ locals: fc.nat(3), stmts: fc.array(stmtArb, { maxLength: 8 }) }), { maxLength: 4 }),
  exportMemoryAs: fc.option(fc.constantFrom('memory', 'mem', ''), { nil: null }),
  exportGlobals: fc.array(fc.nat(), { maxLength: 3 }),
  funcNamedMemory: fc.boolean(),
  customAt: fc.array(fc.record({ before: fc.nat(12), name: fc.string({ maxLength: 6 }), bytes: fc.uint8Array({ maxLength: 12 }) }), { maxLength: 3 }),
  start: fc.boolean(),
  pad: fc.boolean(),
});

/** Encodes a spec as a module that WebAssembly.validate() accepts (the tests check that it does). */
export function buildModule(spec: ModuleSpec): Uint8Array {
  const pad = spec.pad;
  const u = (n: number): number[] => leb(n, pad);
  const vec = (items: number[][]): number[] => [...u(items.length), ...items.flat()];
  const hasMemory = spec.memory !== null;
  const importedFuncs = spec.wasiImports;
  const firstBody = importedFuncs;
  // Function index space: WASI imports (type 2), then the bodies (type 0), then the handler (type 1).
  const handlerIndex = firstBody + spec.bodies.length;
  const globalsBase = spec.importedGlobal ? 1 : 0;
  const globalIndex = (g: number): number => globalsBase + g;

  const constOf = (type: number, v: number): number[] => {
    switch (type) {
      case I32: return [0x41, ...sleb(BigInt(v | 0))];
      case I64: return [0x42, ...sleb(BigInt(v))];
      case F32: { const b = Buffer.alloc(4); b.writeFloatLE(v); return [0x43, ...b]; }
      case F64: { const b = Buffer.alloc(8); b.writeDoubleLE(v); return [0x44, ...b]; }
      default: return [0xfd, ...leb(12, false), ...new Array<number>(16).fill(v & 0xff)];
    }
  };

  const code = (stmts: readonly Stmt[], locals: number): number[] => stmts.flatMap((s): number[] => {
    switch (s.k) {
      case 'i32': return [0x41, ...sleb(BigInt(s.v)), 0x1a];
      case 'i64': return [0x42, ...sleb(s.v), 0x1a];
      case 'f32': { const b = Buffer.alloc(4); b.writeUInt32LE(s.bits); return [0x43, ...b, 0x1a]; }
      case 'f64': { const b = Buffer.alloc(8); b.writeDoubleLE(s.v); return [0x44, ...b, 0x1a]; }
      case 'load': if (!hasMemory) return [0x01]; return [0x41, 0x00, s.op, ...u(Math.min(s.align, s.op === 0x28 ? 2 : 0)), ...u(s.offset), 0x1a];
      case 'store': return hasMemory ? [0x41, 0x00, 0x41, 0x07, 0x36, ...u(2), ...u(s.offset)] : [0x01];
      case 'grow': return hasMemory ? [0x41, ...sleb(BigInt(s.pages)), 0x40, 0x00, 0x1a] : [0x01];
      case 'size': return hasMemory ? [0x3f, 0x00, 0x1a] : [0x01];
      case 'fill': return hasMemory ? [0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, ...u(11), 0x00] : [0x01];
      case 'copy': return hasMemory ? [0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, ...u(10), 0x00, 0x00] : [0x01];
      case 'block': return [0x02, 0x40, ...code(s.body, locals), 0x0b];
      case 'loop': return [0x03, 0x40, ...code(s.body, locals), 0x0b];
      case 'if': return [0x41, s.c, 0x04, 0x40, ...code(s.then, locals), 0x05, ...code(s.else, locals), 0x0b];
      case 'blockResult': return [0x02, I32, 0x41, ...sleb(BigInt(s.v)), 0x0b, 0x1a];
      // br_table to the enclosing block's end (label 0) from every slot.
      case 'brTable': return [0x02, 0x40, 0x41, ...sleb(BigInt(s.pick)), 0x0e, ...u(s.labels), ...new Array<number>(s.labels + 1).fill(0), 0x0b];
      case 'globalGet': return spec.globals.length === 0 ? [0x01] : [0x23, ...u(globalIndex(s.g % spec.globals.length)), 0x1a];
      case 'globalSet': {
        const g = spec.globals.length === 0 ? undefined : s.g % spec.globals.length;
        if (g === undefined || !spec.globals[g]!.mutable) return [0x01];
        return [...constOf(spec.globals[g]!.type, 1), 0x24, ...u(globalIndex(g))];
      }
      // Calls go to the handler (which calls nothing) or a WASI import: never recursive.
      case 'call': return s.f % 2 === 0 || importedFuncs === 0 ? [0x10, ...u(handlerIndex), 0x1a] : [0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0x10, ...u(0), 0x1a];
      case 'callIndirect': return spec.table ? [0x41, 0x00, 0x11, ...u(0), ...u(0)] : [0x01];
      case 'v128': return [0xfd, ...u(12), ...s.bytes, 0x1a];
      case 'v128load': return hasMemory ? [0x41, 0x00, 0xfd, ...u(0), ...u(4), ...u(0), 0x1a] : [0x01];
      case 'lane': return [0x41, 0x05, 0xfd, ...u(17), 0xfd, ...u(27), 0x03, 0x1a]; // i32x4.splat; i32x4.extract_lane 3
      case 'refNull': return [0xd0, 0x70, 0x1a];
      case 'select': return [0x41, 0x01, 0x41, 0x02, 0x41, 0x00, ...(s.typed ? [0x1c, ...u(1), I32] : [0x1b]), 0x1a];
      case 'local': return locals === 0 ? [0x01] : [0x20, ...u(s.l % locals), 0x22, ...u(s.l % locals), 0x21, ...u(s.l % locals)];
      case 'truncSat': return [0x43, 0, 0, 0x80, 0x40, 0xfc, ...u(0), 0x1a];
      case 'nop': return [0x01];
    }
  });

  const sections: { id: number; content: number[] }[] = [];
  const types = [...BASE_TYPES];
  sections.push({ id: 1, content: vec(types.map(([p, r]) => [0x60, ...u(p.length), ...p, ...u(r.length), ...r])) });
  const imports: number[][] = [];
  for (let i = 0; i < spec.wasiImports; i++) imports.push([...utf8Name('wasi_snapshot_preview1', pad), ...utf8Name(['fd_write', 'fd_read'][i] ?? `f${i}`, pad), 0x00, ...u(2)]);
  if (spec.importedGlobal) imports.push([...utf8Name('thaw', pad), ...utf8Name('g', pad), 0x03, I32, 0x00]);
  const limits = (m: MemorySpec): number[] => (m.max === undefined ? [0x00, ...u(m.min)] : [0x01, ...u(m.min), ...u(m.max)]);
  if (spec.memory?.imported) imports.push([...utf8Name('env', pad), ...utf8Name('memory', pad), 0x02, ...limits(spec.memory)]);
  if (imports.length > 0) sections.push({ id: 2, content: vec(imports) });
  sections.push({ id: 3, content: vec([...spec.bodies.map(() => u(0)), u(1)]) });
  if (spec.table) sections.push({ id: 4, content: vec([[0x70, 0x00, ...u(1)]]) });
  if (spec.memory && !spec.memory.imported) sections.push({ id: 5, content: vec([limits(spec.memory)]) });
  if (spec.globals.length > 0) sections.push({ id: 6, content: vec(spec.globals.map((g) => [g.type, g.mutable ? 1 : 0, ...constOf(g.type, g.init), 0x0b])) });
  const exports: number[][] = [[...utf8Name('handle', pad), 0x00, ...u(handlerIndex)]];
  const names = new Set(['handle']);
  if (hasMemory && spec.exportMemoryAs !== null) {
    exports.push([...utf8Name(spec.exportMemoryAs, pad), 0x02, ...u(0)]);
    names.add(spec.exportMemoryAs);
  }
  if (spec.funcNamedMemory && !names.has('memory')) {
    exports.push([...utf8Name('memory', pad), 0x00, ...u(handlerIndex)]);
    names.add('memory');
  }
  for (const g of spec.exportGlobals) {
    if (spec.globals.length === 0) break;
    const i = globalIndex(g % spec.globals.length);
    // Sometimes under the rewriter's own name for it, sometimes under another global's.
    const name = g % 3 === 0 ? `thaw:global:${i}` : g % 3 === 1 ? `thaw:global:${i + 1}` : `g${i}`;
    if (names.has(name)) continue;
    names.add(name);
    exports.push([...utf8Name(name, pad), 0x03, ...u(i)]);
  }
  sections.push({ id: 7, content: vec(exports) });
  // Start must name a () -> () function: the first body, when there is one.
  if (spec.start && spec.bodies.length > 0) sections.push({ id: 8, content: u(firstBody) });
  const bodies = [...spec.bodies.map((b) => {
    const localDecl = b.locals === 0 ? u(0) : [...u(1), ...u(b.locals), I32];
    return [...localDecl, ...code(b.stmts, b.locals), 0x0b];
  }), [...u(0), 0x41, 0x00, 0x0b]];
  sections.push({ id: 10, content: vec(bodies.map((b) => [...u(b.length), ...b])) });

  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  sections.forEach((s, i) => {
    for (const c of spec.customAt) if (c.before === i) out.push(0x00, ...u(utf8Name(c.name, pad).length + c.bytes.length), ...utf8Name(c.name, pad), ...c.bytes);
    out.push(s.id, ...u(s.content.length), ...s.content);
  });
  for (const c of spec.customAt) if (c.before >= sections.length) out.push(0x00, ...u(utf8Name(c.name, pad).length + c.bytes.length), ...utf8Name(c.name, pad), ...c.bytes);
  return Uint8Array.from(out);
}

/** The built example functions (functions/**\/build/*.wasm, present after setup), smallest first. */
export function builtModules(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.wasm') && dir.endsWith('/build')) out.push(new Uint8Array(readFileSync(p)));
    }
  };
  if (existsSync(join(REPO_ROOT, 'functions'))) walk(join(REPO_ROOT, 'functions'));
  return out.sort((a, b) => a.length - b.length);
}
