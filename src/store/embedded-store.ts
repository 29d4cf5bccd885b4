// The embedded object store: one file per object under a local directory, with an async face
// for the daemon and a synchronous face for sandbox hosts. Writes are atomic and durable.
//
// On-disk layout (every name is built from the key by `keyToSegments`, never taken from it):
//
//   <dir>/
//     <enc>.o                         object whose encoded key is at most 200 characters
//     <enc[0,200)>.d/<enc[200,..)>.o  longer keys continue in directories, 200 characters each
//     .tmp-<16 hex>                   a write in flight (always in the target's own directory)
//
// <enc> keeps the bytes [A-Za-z0-9_-] of the UTF-8 key and writes every other byte as %XX
// (upper-case hex). The encoding is canonical, so two keys never share a file; '.', '/' and
// '%' never pass through, so "..", "a/b" or "/etc/x" cannot leave <dir>. Names ending in .d
// and .o cannot collide because '.' never occurs inside <enc>, and temp names start with '.'
// which no encoded name does. Splitting keeps each name under the 255-byte NAME_MAX: a
// 512-byte key can encode to 1,536 characters. Directories of deleted long keys are left in
// place (empty), because removing them would race with a concurrent put into them.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { ObjectStore, SyncObjectStore } from './object-store.js';
import { exactBytes } from './exact-bytes.js';
import { validateObjectKey } from './object-key.js';
import { objectStoreError, reasonOf } from './store-error.js';

/** Characters of an encoded key per path segment; with the 2-character suffix, < NAME_MAX. */
const SEGMENT_CHARS = 200;
const OBJECT_SUFFIX = '.o';
const DIR_SUFFIX = '.d';
const TEMP_PREFIX = '.tmp-';

/**
 * Async embedded store over a directory, for the daemon, CLI and harness.
 *
 * @example
 * const store = await EmbeddedStore.open('/var/lib/thaw/objects');
 * await store.put('inputs/a', new Uint8Array([1, 2]));
 */
export class EmbeddedStore implements ObjectStore {
  readonly kind = 'embedded' as const;
  /** Absolute path of the store's root directory. */
  readonly dir: string;
  #closed = false;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Opens (creating if needed) the store rooted at `dir`.
   *
   * @param dir the root directory; relative paths resolve against the working directory
   * @returns the open store
   * @throws THAW_OBJECT_STORE when the directory cannot be created or is not a directory
   */
  static async open(dir: string): Promise<EmbeddedStore> {
    const root = path.resolve(dir);
    try {
      await fsp.mkdir(root, { recursive: true });
    } catch (err: unknown) {
      throw objectStoreError('embedded', `open ${root}: mkdir: ${reasonOf(err)}`, err);
    }
    return new EmbeddedStore(root);
  }

  /** Reads an object. Returns undefined when the key does not exist. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE on I/O failure. */
  async get(key: string): Promise<Uint8Array | undefined> {
    this.#checkOpen('get', key);
    const file = path.join(this.dir, ...keyToSegments(key));
    try {
      return exactBytes(await fsp.readFile(file));
    } catch (err: unknown) {
      if (isMissing(err)) return undefined;
      throw objectStoreError('embedded', `get ${JSON.stringify(key)} in ${this.dir}: read: ${reasonOf(err)}`, err);
    }
  }

  /** Writes an object atomically (temp file, fsync, rename, fsync dir). Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE on I/O failure. */
  async put(key: string, value: Uint8Array): Promise<void> {
    this.#checkOpen('put', key);
    const target = planWrite(this.dir, key);
    let step = 'mkdir';
    let tempFile: string | undefined;
    try {
      const created = await fsp.mkdir(target.parent, { recursive: true });
      step = 'open temp file';
      tempFile = path.join(target.parent, tempName());
      const handle = await fsp.open(tempFile, 'wx', 0o644);
      try {
        step = 'write';
        await handle.writeFile(value);
        step = 'fsync';
        await handle.sync();
      } finally {
        await handle.close();
      }
      step = 'rename';
      await fsp.rename(tempFile, target.file);
      tempFile = undefined;
      step = 'fsync dir';
      for (const dir of dirsToSync(this.dir, target.parent, created)) await fsyncDir(dir);
    } catch (err: unknown) {
      if (tempFile !== undefined) await fsp.rm(tempFile, { force: true }).catch(() => undefined);
      throw objectStoreError('embedded', `put ${JSON.stringify(key)} in ${this.dir}: ${step}: ${reasonOf(err)}`, err);
    }
  }

  /** Deletes an object. Returns false when it did not exist. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE on I/O failure. */
  async delete(key: string): Promise<boolean> {
    this.#checkOpen('delete', key);
    const target = planWrite(this.dir, key);
    let step = 'unlink';
    try {
      await fsp.unlink(target.file);
      step = 'fsync dir';
      await fsyncDir(target.parent);
      return true;
    } catch (err: unknown) {
      if (step === 'unlink' && isMissing(err)) return false;
      throw objectStoreError('embedded', `delete ${JSON.stringify(key)} in ${this.dir}: ${step}: ${reasonOf(err)}`, err);
    }
  }

  /** Lists keys starting with `prefix` (all keys when omitted), sorted by UTF-16 code unit. Throws THAW_OBJECT_STORE on I/O failure. */
  async list(prefix = ''): Promise<string[]> {
    this.#checkOpen('list');
    try {
      return filterKeys(await walkAsync(this.dir, ''), prefix);
    } catch (err: unknown) {
      throw objectStoreError('embedded', `list in ${this.dir}: readdir: ${reasonOf(err)}`, err);
    }
  }

  /** Closes the store; later calls throw THAW_OBJECT_STORE. Holds no resources, so never fails. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  #checkOpen(op: string, key?: string): void {
    if (key !== undefined) validateObjectKey(key);
    if (this.#closed) throw objectStoreError('embedded', `${op} in ${this.dir}: the store is closed`);
  }
}

/**
 * Synchronous embedded store over a directory, for sandbox hosts answering Wasm host calls.
 * Same layout and guarantees as {@link EmbeddedStore}; the two may share a directory, even
 * across processes.
 */
export class EmbeddedSyncStore implements SyncObjectStore {
  readonly kind = 'embedded' as const;
  /** Absolute path of the store's root directory. */
  readonly dir: string;
  #closed = false;

  /**
   * Opens (creating if needed) the store rooted at `dir`.
   *
   * @param dir the root directory; relative paths resolve against the working directory
   * @throws THAW_OBJECT_STORE when the directory cannot be created
   */
  constructor(dir: string) {
    this.dir = path.resolve(dir);
    try {
      fs.mkdirSync(this.dir, { recursive: true });
    } catch (err: unknown) {
      throw objectStoreError('embedded', `open ${this.dir}: mkdir: ${reasonOf(err)}`, err);
    }
  }

  /** Reads an object. Returns undefined when the key does not exist. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE on I/O failure. */
  get(key: string): Uint8Array | undefined {
    this.#checkOpen('get', key);
    const file = path.join(this.dir, ...keyToSegments(key));
    try {
      return exactBytes(fs.readFileSync(file));
    } catch (err: unknown) {
      if (isMissing(err)) return undefined;
      throw objectStoreError('embedded', `get ${JSON.stringify(key)} in ${this.dir}: read: ${reasonOf(err)}`, err);
    }
  }

  /** Writes an object atomically (temp file, fsync, rename, fsync dir). Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE on I/O failure. */
  put(key: string, value: Uint8Array): void {
    this.#checkOpen('put', key);
    const target = planWrite(this.dir, key);
    let step = 'mkdir';
    let tempFile: string | undefined;
    try {
      const created = fs.mkdirSync(target.parent, { recursive: true });
      step = 'open temp file';
      tempFile = path.join(target.parent, tempName());
      const fd = fs.openSync(tempFile, 'wx', 0o644);
      try {
        step = 'write';
        writeAllSync(fd, value);
        step = 'fsync';
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      step = 'rename';
      fs.renameSync(tempFile, target.file);
      tempFile = undefined;
      step = 'fsync dir';
      for (const dir of dirsToSync(this.dir, target.parent, created)) fsyncDirSync(dir);
    } catch (err: unknown) {
      if (tempFile !== undefined) fs.rmSync(tempFile, { force: true });
      throw objectStoreError('embedded', `put ${JSON.stringify(key)} in ${this.dir}: ${step}: ${reasonOf(err)}`, err);
    }
  }

  /** Deletes an object. Returns false when it did not exist. Throws THAW_REQUEST_INVALID for a bad key, THAW_OBJECT_STORE on I/O failure. */
  delete(key: string): boolean {
    this.#checkOpen('delete', key);
    const target = planWrite(this.dir, key);
    let step = 'unlink';
    try {
      fs.unlinkSync(target.file);
      step = 'fsync dir';
      fsyncDirSync(target.parent);
      return true;
    } catch (err: unknown) {
      if (step === 'unlink' && isMissing(err)) return false;
      throw objectStoreError('embedded', `delete ${JSON.stringify(key)} in ${this.dir}: ${step}: ${reasonOf(err)}`, err);
    }
  }

  /** Lists keys starting with `prefix` (all keys when omitted), sorted. Throws THAW_OBJECT_STORE on I/O failure. */
  list(prefix = ''): string[] {
    this.#checkOpen('list');
    try {
      return filterKeys(walkSync(this.dir, ''), prefix);
    } catch (err: unknown) {
      throw objectStoreError('embedded', `list in ${this.dir}: readdir: ${reasonOf(err)}`, err);
    }
  }

  /** Closes the store; later calls throw THAW_OBJECT_STORE. Holds no resources, so never fails. */
  close(): void {
    this.#closed = true;
  }

  #checkOpen(op: string, key?: string): void {
    if (key !== undefined) validateObjectKey(key);
    if (this.#closed) throw objectStoreError('embedded', `${op} in ${this.dir}: the store is closed`);
  }
}

/**
 * The relative path of `key`'s object file, as path segments (see the layout at the top).
 * Exported for tests; callers must have validated the key.
 */
export function keyToSegments(key: string): string[] {
  const encoded = encodeKey(validateObjectKey(key));
  const segments: string[] = [];
  for (let at = 0; at < encoded.length; at += SEGMENT_CHARS) {
    const chunk = encoded.slice(at, at + SEGMENT_CHARS);
    segments.push(at + SEGMENT_CHARS < encoded.length ? chunk + DIR_SUFFIX : chunk + OBJECT_SUFFIX);
  }
  return segments;
}

/** Inverse of {@link keyToSegments} on the joined encoded text; undefined for foreign names. */
function decodeKey(encoded: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (isPlainByte(c)) {
      bytes.push(c);
    } else {
      return undefined;
    }
  }
  const key = Buffer.from(bytes).toString('utf8');
  // Only canonical encodings of valid keys are objects; anything else was not written by us.
  try {
    if (encodeKey(validateObjectKey(key)) !== encoded) return undefined;
  } catch {
    return undefined;
  }
  return key;
}

function encodeKey(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += isPlainByte(b) ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

/** [A-Za-z0-9_-]: bytes that appear as themselves in file names. */
function isPlainByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f || b === 0x2d;
}

function planWrite(root: string, key: string): { file: string; parent: string } {
  const file = path.join(root, ...keyToSegments(key));
  return { file, parent: path.dirname(file) };
}

function tempName(): string {
  return TEMP_PREFIX + randomBytes(8).toString('hex');
}

/**
 * Directories whose entries changed and must be fsynced for the rename to be durable: the
 * target's parent always, and when mkdir created directories, every parent up to the root.
 */
function dirsToSync(root: string, parent: string, created: string | undefined): string[] {
  const dirs = [parent];
  if (created === undefined) return dirs;
  for (let dir = parent; dir !== root && dir.startsWith(root); ) {
    dir = path.dirname(dir);
    dirs.push(dir);
  }
  return dirs;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function writeAllSync(fd: number, value: Uint8Array): void {
  for (let written = 0; written < value.byteLength; ) {
    written += fs.writeSync(fd, value, written, value.byteLength - written);
  }
}

/** Entries found while walking: encoded key text so far, and whether it is complete. */
function classify(prefix: string, name: string, isDir: boolean): { encoded: string; complete: boolean } | undefined {
  if (name.startsWith('.')) return undefined;
  if (isDir && name.endsWith(DIR_SUFFIX)) return { encoded: prefix + name.slice(0, -DIR_SUFFIX.length), complete: false };
  if (!isDir && name.endsWith(OBJECT_SUFFIX)) return { encoded: prefix + name.slice(0, -OBJECT_SUFFIX.length), complete: true };
  return undefined;
}

function walkSync(dir: string, encodedSoFar: string): string[] {
  const keys: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const found = classify(encodedSoFar, entry.name, entry.isDirectory());
    if (found === undefined) continue;
    if (found.complete) {
      const key = decodeKey(found.encoded);
      if (key !== undefined) keys.push(key);
    } else {
      keys.push(...walkSync(path.join(dir, entry.name), found.encoded));
    }
  }
  return keys;
}

async function walkAsync(dir: string, encodedSoFar: string): Promise<string[]> {
  const keys: string[] = [];
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const found = classify(encodedSoFar, entry.name, entry.isDirectory());
    if (found === undefined) continue;
    if (found.complete) {
      const key = decodeKey(found.encoded);
      if (key !== undefined) keys.push(key);
    } else {
      keys.push(...(await walkAsync(path.join(dir, entry.name), found.encoded)));
    }
  }
  return keys;
}

function filterKeys(keys: string[], prefix: string): string[] {
  return keys.filter((k) => k.startsWith(prefix)).sort();
}

/** ENOENT, or ENOTDIR when a component of the path is a file: either way, no such object. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
