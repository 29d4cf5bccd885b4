// A small reader/writer for the WebAssembly binary format: enough to validate a module's
// structure with precise messages, list its imports, exports, globals and memories, and rewrite
// it the way Wizer does (export every mutable global so a snapshot can read and restore it).
//
//   module   := magic "\0asm" | version 01 00 00 00 | section*
//   section  := id:u8 | sizeBytes:u32 (LEB128) | content[sizeBytes]
//
// Non-custom sections appear at most once, in the order of SECTION_ORDER; custom sections (id 0)
// may appear anywhere. Only the sections whose contents matter here are decoded (type, import,
// function, memory, global, export); the others are carried through byte for byte. Instruction
// bodies are never decoded: WebAssembly.validate checks them.

import { ThawError } from '../../core/errors.js';

/** Prefix of the export names given to mutable globals: `thaw:global:<global index>`. */
export const GLOBAL_EXPORT_PREFIX = 'thaw:global:';
/** Name under which a module's memory is exported when it was not exported already. */
export const MEMORY_EXPORT_NAME = 'memory';
/** Size of a WebAssembly page in bytes. */
export const WASM_PAGE_BYTES = 65_536;

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'funcref' | 'externref';
export type ExternKind = 'function' | 'table' | 'memory' | 'global' | 'tag';

export interface FuncType {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

/** Memory limits in 64 KiB pages. `maxPages` is undefined when the module declares no maximum. */
export interface MemoryLimits {
  readonly minPages: number;
  readonly maxPages: number | undefined;
  readonly shared: boolean;
}

export interface WasmImport {
  readonly module: string;
  readonly name: string;
  readonly kind: ExternKind;
  /** For functions and tags: index into the type section. */
  readonly typeIndex: number | undefined;
}

export interface WasmExport {
  readonly name: string;
  readonly kind: ExternKind;
  /** Index in the index space of `kind` (imports first, then definitions). */
  readonly index: number;
}

export interface WasmGlobal {
  /** Index in the global index space (imported globals come first). */
  readonly index: number;
  readonly valType: ValType;
  readonly mutable: boolean;
  readonly imported: boolean;
}

export interface WasmMemory {
  /** Index in the memory index space (imported memories come first). */
  readonly index: number;
  readonly limits: MemoryLimits;
  readonly imported: boolean;
}

export interface WasmSection {
  readonly id: number;
  /** "type", "import", ..., or "custom:<name>" for custom sections. */
  readonly name: string;
  /** Offset of the section's id byte. */
  readonly offsetBytes: number;
  /** Offset of the first content byte (after the id and the size). */
  readonly contentOffsetBytes: number;
  readonly sizeBytes: number;
}

/** What parseWasm found in a module. */
export interface WasmModuleInfo {
  readonly sections: readonly WasmSection[];
  readonly types: readonly FuncType[];
  readonly imports: readonly WasmImport[];
  readonly exports: readonly WasmExport[];
  readonly globals: readonly WasmGlobal[];
  readonly memories: readonly WasmMemory[];
  /** Type index of every function, imported ones first. */
  readonly functionTypes: readonly number[];
}

/** Result of exportMutableGlobals. */
export interface GlobalExportRewrite {
  readonly bytes: Uint8Array;
  /** Export names of the module's own mutable globals (all of them, added now or before). */
  readonly globalExports: readonly string[];
  /** Name of the memory export, or undefined when the module defines and imports no memory. */
  readonly memoryExport: string | undefined;
  /** How many export entries the rewrite added. */
  readonly addedExports: number;
}

const SECTION_NAMES: Readonly<Record<number, string>> = {
  0: 'custom', 1: 'type', 2: 'import', 3: 'function', 4: 'table', 5: 'memory', 6: 'global', 7: 'export',
  8: 'start', 9: 'element', 10: 'code', 11: 'data', 12: 'datacount', 13: 'tag',
};
/** Required relative order of the non-custom sections (the tag section sits between memory and global). */
const SECTION_ORDER: readonly number[] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
const EXPORT_SECTION_ID = 7;
const MEMORY_SECTION_ID = 5;
const KIND_BY_BYTE: readonly ExternKind[] = ['function', 'table', 'memory', 'global', 'tag'];
const VALTYPE_BY_BYTE: Readonly<Record<number, ValType>> = {
  0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref',
};
const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalid(detail: string): never {
  throw new ThawError('THAW_MODULE_INVALID', { detail });
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(2, '0');
}

/** A bounds-checked cursor over one region of the module; every read names what it reads. */
class Reader {
  pos: number;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
    /** Where the region is, for messages ("section import"). */
    private readonly where: string,
  ) {
    this.pos = start;
  }

  private truncated(what: string): never {
    return invalid(`${this.where} is truncated: ${what} at offset ${this.pos} runs past its end (offset ${this.end})`);
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.truncated(what);
    return this.bytes[this.pos++] as number;
  }

  /** Unsigned LEB128 of at most 32 bits (at most 5 bytes, unused high bits zero). */
  u32(what: string): number {
    const start = this.pos;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      const byte = this.u8(what);
      if (i === 4 && (byte & 0x70) !== 0) invalid(`${this.where}: LEB128 ${what} at offset ${start} does not fit in 32 bits`);
      result += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) return result;
    }
    return invalid(`${this.where}: LEB128 ${what} at offset ${start} is longer than 5 bytes`);
  }

  /** Skips a signed LEB128 of at most `bits` bits. */
  skipSigned(bits: 32 | 64, what: string): void {
    const start = this.pos;
    const maxBytes = Math.ceil(bits / 7);
    for (let i = 0; i < maxBytes; i++) {
      if ((this.u8(what) & 0x80) === 0) return;
    }
    invalid(`${this.where}: LEB128 ${what} at offset ${start} is longer than ${maxBytes} bytes`);
  }

  skip(n: number, what: string): void {
    if (n > this.end - this.pos) this.truncated(what);
    this.pos += n;
  }

  name(what: string): string {
    const length = this.u32(`${what} length`);
    const start = this.pos;
    this.skip(length, what);
    try {
      return utf8.decode(this.bytes.subarray(start, start + length));
    } catch {
      return invalid(`${this.where}: ${what} at offset ${start} is not valid UTF-8`);
    }
  }

  valType(what: string): ValType {
    const at = this.pos;
    const byte = this.u8(what);
    const t = VALTYPE_BY_BYTE[byte];
    if (t === undefined) invalid(`${this.where}: unsupported value type ${hex(byte)} for ${what} at offset ${at}`);
    return t;
  }

  limits(what: string): MemoryLimits {
    const at = this.pos;
    const flags = this.u8(`${what} flags`);
    if (flags > 3) invalid(`${this.where}: ${what} at offset ${at} has limits flags ${hex(flags)} (64-bit memories are not supported)`);
    const minPages = this.u32(`${what} minimum`);
    const maxPages = (flags & 1) !== 0 ? this.u32(`${what} maximum`) : undefined;
    if (maxPages !== undefined && maxPages < minPages) invalid(`${this.where}: ${what} at offset ${at} has maximum ${maxPages} below minimum ${minPages}`);
    return { minPages, maxPages, shared: (flags & 2) !== 0 };
  }

  /** Skips a constant expression (global initialiser), extended-const instructions included. */
  constExpr(what: string): void {
    for (;;) {
      const at = this.pos;
      const op = this.u8(what);
      switch (op) {
        case 0x0b: return; // end
        case 0x41: this.skipSigned(32, `${what} i32.const`); break;
        case 0x42: this.skipSigned(64, `${what} i64.const`); break;
        case 0x43: this.skip(4, `${what} f32.const`); break;
        case 0x44: this.skip(8, `${what} f64.const`); break;
        case 0x23: this.u32(`${what} global.get`); break;
        case 0xd2: this.u32(`${what} ref.func`); break;
        case 0xd0: this.u8(`${what} ref.null type`); break;
        case 0xfd: {
          if (this.u32(`${what} SIMD opcode`) !== 12) invalid(`${this.where}: ${what} at offset ${at} uses a SIMD instruction that is not v128.const`);
          this.skip(16, `${what} v128.const`);
          break;
        }
        case 0x6a: case 0x6b: case 0x6c: case 0x7c: case 0x7d: case 0x7e: break; // i32/i64 add, sub, mul
        default: invalid(`${this.where}: ${what} at offset ${at} has opcode ${hex(op)}, which is not allowed in a constant expression`);
      }
    }
  }

  expectEnd(): void {
    if (this.pos !== this.end) invalid(`${this.where} has ${this.end - this.pos} unexpected trailing byte(s) at offset ${this.pos}`);
  }
}

function sectionLabel(id: number, at: number): string {
  return `section ${SECTION_NAMES[id] ?? id} (id ${id}) at offset ${at}`;
}

/**
 * Parses and structurally validates a module.
 * @param bytes the module's bytes
 * @returns its sections, types, imports, exports, globals and memories
 * @throws THAW_MODULE_INVALID naming the first problem found (bad magic, truncated section, ...)
 */
export function parseWasm(bytes: Uint8Array): WasmModuleInfo {
  if (bytes.length < 8) invalid(`module is ${bytes.length} bytes, too short for the 8-byte header`);
  if (MAGIC.some((b, i) => bytes[i] !== b)) {
    invalid(`bad magic number ${Array.from(bytes.subarray(0, 4), hex).join(' ')} at offset 0 (expected 0x00 0x61 0x73 0x6d, "\\0asm")`);
  }
  const version = (bytes[4] as number) | ((bytes[5] as number) << 8);
  const layer = (bytes[6] as number) | ((bytes[7] as number) << 8);
  if (layer !== 0) invalid(`header declares layer ${layer}: this is a WebAssembly component, not a core module`);
  if (version !== 1) invalid(`unsupported binary format version ${version} (expected 1)`);

  const sections: WasmSection[] = [];
  const types: FuncType[] = [];
  const imports: WasmImport[] = [];
  const exports: WasmExport[] = [];
  const globals: WasmGlobal[] = [];
  const memories: WasmMemory[] = [];
  const functionTypes: number[] = [];

  const top = new Reader(bytes, 8, bytes.length, 'module');
  let lastOrder = -1;
  let lastId = 0;
  while (top.pos < bytes.length) {
    const offsetBytes = top.pos;
    const id = top.u8('section id');
    if (SECTION_NAMES[id] === undefined) invalid(`unknown section id ${id} at offset ${offsetBytes}`);
    const label = sectionLabel(id, offsetBytes);
    const sizeBytes = top.u32(`${label} size`);
    const contentOffsetBytes = top.pos;
    const remaining = bytes.length - contentOffsetBytes;
    if (sizeBytes > remaining) invalid(`${label} declares ${sizeBytes} bytes but only ${remaining} remain (truncated section)`);
    if (id !== 0) {
      const order = SECTION_ORDER.indexOf(id);
      if (order === lastOrder) invalid(`${label} is a duplicate`);
      if (order < lastOrder) invalid(`${label} is out of order: it must come before section ${SECTION_NAMES[lastId]}`);
      lastOrder = order;
      lastId = id;
    }
    const r = new Reader(bytes, contentOffsetBytes, contentOffsetBytes + sizeBytes, label);
    let name = SECTION_NAMES[id] as string;
    switch (id) {
      case 0:
        name = `custom:${r.name('custom section name')}`;
        r.pos = r.end;
        break;
      case 1: readTypes(r, types); break;
      case 2: readImports(r, imports, globals, memories, functionTypes); break;
      case 3: {
        const count = r.u32('function count');
        for (let i = 0; i < count; i++) functionTypes.push(r.u32(`type index of function ${i}`));
        break;
      }
      case 5: {
        const count = r.u32('memory count');
        for (let i = 0; i < count; i++) memories.push({ index: memories.length, limits: r.limits(`memory ${i}`), imported: false });
        break;
      }
      case 6: {
        const count = r.u32('global count');
        for (let i = 0; i < count; i++) {
          const valType = r.valType(`type of global ${globals.length}`);
          const mutable = readMutability(r, `global ${globals.length}`);
          r.constExpr(`initialiser of global ${globals.length}`);
          globals.push({ index: globals.length, valType, mutable, imported: false });
        }
        break;
      }
      case 7: {
        const count = r.u32('export count');
        for (let i = 0; i < count; i++) {
          const exportName = r.name(`name of export ${i}`);
          const at = r.pos;
          const kindByte = r.u8(`kind of export '${exportName}'`);
          const kind = KIND_BY_BYTE[kindByte];
          if (kind === undefined) invalid(`${label}: export '${exportName}' has unknown kind ${hex(kindByte)} at offset ${at}`);
          exports.push({ name: exportName, kind, index: r.u32(`index of export '${exportName}'`) });
        }
        break;
      }
      default:
        r.pos = r.end;
    }
    r.expectEnd();
    top.pos = r.end;
    sections.push({ id, name, offsetBytes, contentOffsetBytes, sizeBytes });
  }
  checkIndices(types, functionTypes, exports, globals, memories);
  return { sections, types, imports, exports, globals, memories, functionTypes };
}

function readMutability(r: Reader, what: string): boolean {
  const at = r.pos;
  const m = r.u8(`mutability of ${what}`);
  if (m > 1) invalid(`mutability of ${what} at offset ${at} is ${hex(m)} (expected 0x00 or 0x01)`);
  return m === 1;
}

function readTypes(r: Reader, types: FuncType[]): void {
  const count = r.u32('type count');
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const form = r.u8(`form of type ${i}`);
    if (form !== 0x60) invalid(`type ${i} at offset ${at} has form ${hex(form)}: only function types (0x60) are supported`);
    const params: ValType[] = [];
    const results: ValType[] = [];
    const paramCount = r.u32(`parameter count of type ${i}`);
    for (let p = 0; p < paramCount; p++) params.push(r.valType(`parameter ${p} of type ${i}`));
    const resultCount = r.u32(`result count of type ${i}`);
    for (let p = 0; p < resultCount; p++) results.push(r.valType(`result ${p} of type ${i}`));
    types.push({ params, results });
  }
}

function readImports(r: Reader, imports: WasmImport[], globals: WasmGlobal[], memories: WasmMemory[], functionTypes: number[]): void {
  const count = r.u32('import count');
  for (let i = 0; i < count; i++) {
    const module = r.name(`module name of import ${i}`);
    const name = r.name(`field name of import ${i}`);
    const what = `import ${module}.${name}`;
    const at = r.pos;
    const kindByte = r.u8(`kind of ${what}`);
    const kind = KIND_BY_BYTE[kindByte];
    let typeIndex: number | undefined;
    switch (kind) {
      case 'function':
        typeIndex = r.u32(`type index of ${what}`);
        functionTypes.push(typeIndex);
        break;
      case 'table':
        r.valType(`element type of ${what}`);
        r.limits(what);
        break;
      case 'memory':
        memories.push({ index: memories.length, limits: r.limits(what), imported: true });
        break;
      case 'global': {
        const valType = r.valType(`type of ${what}`);
        globals.push({ index: globals.length, valType, mutable: readMutability(r, what), imported: true });
        break;
      }
      case 'tag':
        r.u8(`attribute of ${what}`);
        typeIndex = r.u32(`type index of ${what}`);
        break;
      default:
        invalid(`${what} at offset ${at} has unknown kind ${hex(kindByte)}`);
    }
    imports.push({ module, name, kind, typeIndex });
  }
}

function checkIndices(types: readonly FuncType[], functionTypes: readonly number[], exports: readonly WasmExport[], globals: readonly WasmGlobal[], memories: readonly WasmMemory[]): void {
  functionTypes.forEach((t, i) => {
    if (t >= types.length) invalid(`function ${i} uses type ${t}, but the module declares ${types.length} type(s)`);
  });
  const sizes: Partial<Record<ExternKind, number>> = { function: functionTypes.length, global: globals.length, memory: memories.length };
  const seen = new Set<string>();
  for (const e of exports) {
    if (seen.has(e.name)) invalid(`export name '${e.name}' is used twice`);
    seen.add(e.name);
    const size = sizes[e.kind];
    if (size !== undefined && e.index >= size) invalid(`export '${e.name}' refers to ${e.kind} ${e.index}, but the module has ${size}`);
  }
}

/** Unsigned LEB128 encoding of a 32-bit value. */
export function encodeU32(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) invalid(`cannot encode ${value} as a u32`);
  const out: number[] = [];
  let v = value;
  do {
    let byte = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return Uint8Array.from(out);
}

function encodeName(name: string): Uint8Array {
  const body = new TextEncoder().encode(name);
  return concat([encodeU32(body.length), body]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeSection(id: number, content: Uint8Array): Uint8Array {
  return concat([Uint8Array.of(id), encodeU32(content.length), content]);
}

/**
 * Replaces the content of one non-custom section, or inserts it at its place in the section
 * order when absent. Every other byte of the module is kept as it is.
 */
function withSection(bytes: Uint8Array, info: WasmModuleInfo, id: number, content: Uint8Array): Uint8Array {
  const existing = info.sections.find((s) => s.id === id);
  if (existing !== undefined) {
    const end = existing.contentOffsetBytes + existing.sizeBytes;
    return concat([bytes.subarray(0, existing.offsetBytes), encodeSection(id, content), bytes.subarray(end)]);
  }
  const order = SECTION_ORDER.indexOf(id);
  // Insert right after the last section that must precede it, ahead of any custom sections following that one.
  let insertAt = 8;
  for (const s of info.sections) {
    if (s.id !== 0 && SECTION_ORDER.indexOf(s.id) < order) insertAt = s.contentOffsetBytes + s.sizeBytes;
  }
  return concat([bytes.subarray(0, insertAt), encodeSection(id, content), bytes.subarray(insertAt)]);
}

/**
 * Rewrites a module so that every mutable global it defines (not imports) is exported as
 * `thaw:global:<global index>`, and its memory as `memory` when not exported yet. The rewrite
 * only appends export entries (creating the export section when absent); all other sections,
 * custom sections included, stay byte-identical. Rewriting a rewritten module changes nothing.
 * @param bytes the module's bytes
 * @returns the rewritten bytes and the export names of the globals and memory
 * @throws THAW_MODULE_INVALID when the module is malformed or an export name it needs is taken
 */
export function exportMutableGlobals(bytes: Uint8Array): GlobalExportRewrite {
  const info = parseWasm(bytes);
  const byName = new Map(info.exports.map((e) => [e.name, e]));
  const added: Uint8Array[] = [];
  const globalExports: string[] = [];

  for (const g of info.globals) {
    if (g.imported || !g.mutable) continue;
    const name = GLOBAL_EXPORT_PREFIX + g.index;
    const prior = byName.get(name);
    if (prior !== undefined && (prior.kind !== 'global' || prior.index !== g.index)) {
      invalid(`export name '${name}' is taken by ${prior.kind} ${prior.index}`);
    }
    if (prior === undefined) added.push(concat([encodeName(name), Uint8Array.of(3), encodeU32(g.index)]));
    globalExports.push(name);
  }

  let memoryExport: string | undefined;
  if (info.memories.length > 0) {
    memoryExport = info.exports.find((e) => e.kind === 'memory' && e.index === 0)?.name;
    if (memoryExport === undefined) {
      const taken = byName.get(MEMORY_EXPORT_NAME);
      if (taken !== undefined) invalid(`memory 0 is not exported and the name '${MEMORY_EXPORT_NAME}' is taken by ${taken.kind} ${taken.index}`);
      added.push(concat([encodeName(MEMORY_EXPORT_NAME), Uint8Array.of(2), encodeU32(0)]));
      memoryExport = MEMORY_EXPORT_NAME;
    }
  }

  if (added.length === 0) return { bytes, globalExports, memoryExport, addedExports: 0 };
  const section = info.sections.find((s) => s.id === EXPORT_SECTION_ID);
  // The existing entries follow the count: keep them byte for byte and append the new ones.
  let entries: Uint8Array = new Uint8Array(0);
  if (section !== undefined) {
    const r = new Reader(bytes, section.contentOffsetBytes, section.contentOffsetBytes + section.sizeBytes, 'export section');
    r.u32('export count');
    entries = bytes.subarray(r.pos, r.end);
  }
  const content = concat([encodeU32(info.exports.length + added.length), entries, ...added]);
  return { bytes: withSection(bytes, info, EXPORT_SECTION_ID, content), globalExports, memoryExport, addedExports: added.length };
}

/**
 * Lowers the declared maximum of every memory the module defines to at most `maxPages`
 * (adding a maximum where none is declared), so the engine itself refuses memory.grow beyond it.
 * Only the memory section changes.
 * @throws THAW_MODULE_INVALID when the module is malformed; THAW_GUEST_OOM is the caller's
 *   business when a memory's minimum already exceeds `maxPages` (it is kept, see the return)
 * @returns the new bytes and whether some memory's minimum exceeds `maxPages`
 */
export function capMemoryPages(bytes: Uint8Array, maxPages: number): { bytes: Uint8Array; minimumTooLarge: boolean } {
  const info = parseWasm(bytes);
  const defined = info.memories.filter((m) => !m.imported);
  if (defined.length === 0) return { bytes, minimumTooLarge: false };
  let minimumTooLarge = false;
  const parts: Uint8Array[] = [encodeU32(defined.length)];
  for (const { limits } of defined) {
    if (limits.minPages > maxPages) minimumTooLarge = true;
    const max = Math.max(limits.minPages, Math.min(limits.maxPages ?? maxPages, maxPages));
    parts.push(Uint8Array.of(limits.shared ? 3 : 1), encodeU32(limits.minPages), encodeU32(max));
  }
  return { bytes: withSection(bytes, info, MEMORY_SECTION_ID, concat(parts)), minimumTooLarge };
}

/** Export name of the global that instrumentMemoryGrow() sets when a memory.grow fails. */
export const GROW_FAILED_EXPORT = 'thaw:grow_failed';

/** Result of instrumentMemoryGrow. */
export interface GrowInstrumentation {
  readonly bytes: Uint8Array;
  /** How many memory.grow instructions now go through the helper. */
  readonly sites: number;
}

/**
 * Makes failed memory.grow instructions observable: every `memory.grow 0` becomes a call to an
 * appended helper that runs the same memory.grow and, when it returns -1, stores the requested
 * page count in an appended mutable i32 global exported as `thaw:grow_failed`. The engine says
 * nothing when a guest's memory.grow fails at its maximum; with this, a guest that then traps
 * can be reported as out of memory for certain. The type, function and global are appended at
 * the end of their index spaces, so no existing index moves; code bodies without memory.grow,
 * and every other section, keep their bytes.
 * @returns the instrumented module, or undefined when a code body uses an instruction this
 *   decoder does not know (the caller then runs the module as it is)
 * @throws THAW_MODULE_INVALID when the module is malformed
 */
export function instrumentMemoryGrow(bytes: Uint8Array): GrowInstrumentation | undefined {
  const info = parseWasm(bytes);
  const code = info.sections.find((s) => s.id === 10);
  if (code === undefined || info.memories.length !== 1) return { bytes, sites: 0 };
  if (info.exports.some((e) => e.name === GROW_FAILED_EXPORT)) return { bytes, sites: 0 };
  const helperType = info.types.length;
  const helperFunction = info.functionTypes.length;
  const flagGlobal = info.globals.length;

  const r = new Reader(bytes, code.contentOffsetBytes, code.contentOffsetBytes + code.sizeBytes, 'section code');
  const count = r.u32('function body count');
  const bodies: Uint8Array[] = [];
  let sites = 0;
  const call = concat([Uint8Array.of(0x10), encodeU32(helperFunction)]);
  for (let i = 0; i < count; i++) {
    const sizeAt = r.pos;
    const size = r.u32(`size of function body ${i}`);
    const start = r.pos;
    const body = new Reader(bytes, start, start + size, `function body ${i}`);
    r.skip(size, `function body ${i}`);
    const growAt = findMemoryGrows(body);
    if (growAt === undefined) return undefined;
    if (growAt.length === 0) {
      // Copied with its size as encoded: a padded LEB128 (valid, emitted by some linkers) is longer than encodeU32's.
      bodies.push(bytes.subarray(sizeAt, start + size));
      continue;
    }
    const parts: Uint8Array[] = [];
    let from = start;
    for (const at of growAt) {
      parts.push(bytes.subarray(from, at), call);
      from = at + 2; // memory.grow is 0x40 0x00 (memory index 0 in one byte)
    }
    parts.push(bytes.subarray(from, start + size));
    const rewritten = concat(parts);
    bodies.push(concat([encodeU32(rewritten.length), rewritten]));
    sites += growAt.length;
  }
  r.expectEnd();
  if (sites === 0) return { bytes, sites: 0 };

  // helper(pages) = let r = memory.grow(pages) in (if r == -1 then flag := pages); r
  const helperBody = Uint8Array.of(
    0x01, 0x01, 0x7f, // one extra i32 local
    0x20, 0x00, 0x40, 0x00, 0x22, 0x01, // local.get 0; memory.grow 0; local.tee 1
    0x41, 0x7f, 0x46, 0x04, 0x40, // i32.const -1; i32.eq; if
    0x20, 0x00, 0x24, ...encodeU32(flagGlobal), 0x0b, // local.get 0; global.set flag; end
    0x20, 0x01, 0x0b, // local.get 1; end
  );
  bodies.push(concat([encodeU32(helperBody.length), helperBody]));

  let out = bytes;
  const append = (id: number, item: Uint8Array): void => {
    const now = parseWasm(out);
    const s = now.sections.find((x) => x.id === id);
    let entries: Uint8Array = new Uint8Array(0);
    let n = 0;
    if (s !== undefined) {
      const sr = new Reader(out, s.contentOffsetBytes, s.contentOffsetBytes + s.sizeBytes, `section ${SECTION_NAMES[id]}`);
      n = sr.u32('count');
      entries = out.subarray(sr.pos, sr.end);
    }
    out = withSection(out, now, id, concat([encodeU32(n + 1), entries, item]));
  };
  append(1, Uint8Array.of(0x60, 0x01, 0x7f, 0x01, 0x7f)); // (i32) -> i32
  append(3, encodeU32(helperType));
  append(6, Uint8Array.of(0x7f, 0x01, 0x41, 0x00, 0x0b)); // mut i32 = 0
  append(7, concat([encodeName(GROW_FAILED_EXPORT), Uint8Array.of(3), encodeU32(flagGlobal)]));
  out = withSection(out, parseWasm(out), 10, concat([encodeU32(count + 1), ...bodies]));
  return { bytes: out, sites };
}

/** Offsets of the `memory.grow` instructions in one function body, or undefined on an unknown opcode. */
function findMemoryGrows(r: Reader): number[] | undefined {
  const localGroups = r.u32('local group count');
  for (let i = 0; i < localGroups; i++) {
    r.u32('local count');
    r.valType('local type');
  }
  const found: number[] = [];
  const memarg = (): void => {
    const align = r.u32('memarg alignment');
    if ((align & 0x40) !== 0) r.u32('memarg memory index');
    r.u32('memarg offset');
  };
  while (r.pos < r.end) {
    const at = r.pos;
    const op = r.u8('opcode');
    if ((op >= 0x45 && op <= 0xc4) || op === 0x00 || op === 0x01 || op === 0x05 || op === 0x0b || op === 0x0f ||
        op === 0x1a || op === 0x1b || op === 0xd1 || op === 0x19) continue;
    switch (op) {
      case 0x02: case 0x03: case 0x04: case 0x06: { // block, loop, if, try: block type
        const b = r.u8('block type');
        if (b !== 0x40 && VALTYPE_BY_BYTE[b] === undefined) {
          r.pos -= 1;
          r.skipSigned(64, 'block type index'); // s33
        }
        break;
      }
      case 0x0c: case 0x0d: case 0x10: case 0x12: case 0x20: case 0x21: case 0x22: case 0x23: case 0x24:
      case 0x25: case 0x26: case 0xd2: case 0x07: case 0x08: case 0x09: case 0x18:
        r.u32('immediate');
        break;
      case 0x0e: {
        const n = r.u32('br_table length');
        for (let i = 0; i <= n; i++) r.u32('br_table label');
        break;
      }
      case 0x11: case 0x13: r.u32('type index'); r.u32('table index'); break;
      case 0x1c: {
        const n = r.u32('select arity');
        for (let i = 0; i < n; i++) r.valType('select type');
        break;
      }
      case 0x3f: r.u32('memory index'); break;
      case 0x40: {
        if (r.u8('memory index') !== 0) return undefined;
        found.push(at);
        break;
      }
      case 0x41: r.skipSigned(32, 'i32.const'); break;
      case 0x42: r.skipSigned(64, 'i64.const'); break;
      case 0x43: r.skip(4, 'f32.const'); break;
      case 0x44: r.skip(8, 'f64.const'); break;
      case 0xd0: r.u8('heap type'); break;
      case 0xfc: {
        const sub = r.u32('0xfc opcode');
        if (sub <= 7) break;
        if (sub === 8 || sub === 10 || sub === 12 || sub === 14) { r.u32('immediate'); r.u32('immediate'); break; }
        if (sub <= 17) { r.u32('immediate'); break; }
        return undefined;
      }
      case 0xfd: {
        const sub = r.u32('SIMD opcode');
        if (sub <= 11 || sub === 92 || sub === 93) memarg();
        else if (sub === 12 || sub === 13) r.skip(16, 'v128 immediate');
        else if (sub >= 21 && sub <= 34) r.u8('lane');
        else if (sub >= 84 && sub <= 91) { memarg(); r.u8('lane'); }
        else if (sub > 0x113) return undefined;
        break;
      }
      case 0xfe: {
        const sub = r.u32('atomic opcode');
        if (sub === 0x03) r.u8('fence');
        else memarg();
        break;
      }
      default:
        if (op >= 0x28 && op <= 0x3e) { memarg(); break; }
        return undefined;
    }
  }
  return found;
}
