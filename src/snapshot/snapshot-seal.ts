// Snapshot seals: an HMAC-SHA256, with a key only the daemon holds, over each state file, so a
// sandbox host that escapes its jail (and can write snapshot directories) cannot forge one.
// The state file carries the chunk checksums every restore path checks bytes against, so
// sealing it makes those checksums, and through them every byte, the daemon's word.
//
//   <dataDir>/keys/snapshot.key    32 random bytes, mode 0600 (directory 0700), created once
//   <root>/<id>/state.mac          {"format":"thaw-mac-1","stateSha256":hex,"mac":hex}
//
// mac = HMAC-SHA256(key, "thaw-state-v1\n" + id + "\n" + sha256(state.thaw)): it names the
// snapshot, so a sealed state file copied under another id does not verify.
// The flow: a host writes a snapshot; the daemon checks its metadata is what it asked for and
// seals it (sealState). Before each restore the daemon checks the seals of the whole chain
// (verifyChainSeals) and hands the host the sha256 of each state file it verified; the host
// reads the state files and refuses any whose bytes differ (readChain's expected digests).
//
// Artefacts (restore/artefact-seal.ts: working sets, loading sets, compressed images) are sealed
// the same way, all of a snapshot's in one file, by the sha256 of each one's sealed part (header
// and checksum table):
//
//   <root>/<id>/artefacts.mac      {"format":"thaw-artefacts-1","artefacts":{name:hex},"mac":hex}
//
// mac = HMAC-SHA256(key, "thaw-artefacts-v1\n" + id + "\n" + one "name sha256\n" per artefact,
// sorted by name). The daemon seals what it built (a prepare that built something) or adopted (a
// recorded working or loading set), never what it merely found; before each restore it checks the
// seal, removes artefacts the seal does not cover (so they are built or recorded again, by it) and
// hands the host the digests (the restore request's artefactSha256), which refuses any other.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ThawError } from '../core/errors.js';
import { decodeState, type SnapshotMeta } from '../core/snapshot-format.js';
import { STATE_FILE, writeFileDurable } from './snapshot-io.js';
import { digestOf, isSealedArtefact, readSealedPart } from '../restore/artefact-seal.js';

export const MAC_FILE = 'state.mac';
const MAC_FORMAT = 'thaw-mac-1';
const KEY_BYTES = 32;

/**
 * The daemon's snapshot key at <dataDir>/keys/snapshot.key, created if missing: written to a
 * temporary file with mode 0600, fsynced and linked into place (link() never replaces a key
 * another daemon created meanwhile; then that one is used). Throws THAW_INTERNAL (unreadable or
 * wrong-sized key).
 */
export function ensureSnapshotKey(dataDir: string): Buffer {
  const dir = join(dataDir, 'keys');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'snapshot.key');
  try {
    return checkedKey(readFileSync(path), path);
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, randomBytes(KEY_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    chmodSync(tmp, 0o600); // the mode given to open() is masked by the umask
    linkSync(tmp, path);
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
  return checkedKey(readFileSync(path), path);
}

function checkedKey(key: Buffer, path: string): Buffer {
  if (key.length !== KEY_BYTES) throw new ThawError('THAW_INTERNAL', { detail: `${path} holds ${key.length} bytes, a snapshot key is ${KEY_BYTES}` });
  return key;
}

function macOf(key: Buffer, id: string, stateSha256: string): string {
  return createHmac('sha256', key).update(`thaw-state-v1\n${id}\n${stateSha256}`).digest('hex');
}

/** What the daemon asked a host to write: the seal is refused when the state file says otherwise. */
export type ExpectedMeta = Pick<SnapshotMeta, 'id' | 'kind' | 'baseId' | 'createdAt' | 'sourceSandboxId'> & Partial<Pick<SnapshotMeta, 'functionName' | 'moduleDigest'>>;

/**
 * Seals snapshot `expected.id` under `root` after a host wrote it: reads its state file once,
 * checks it decodes and that its metadata is what the daemon asked for, and writes state.mac
 * (atomically, durably). Returns the state file's sha256. Throws THAW_SNAPSHOT_CORRUPT.
 */
export function sealState(root: string, key: Buffer, expected: ExpectedMeta): string {
  const id = expected.id;
  const buf = readFileSync(join(root, id, STATE_FILE));
  const meta = decodeState(id, buf).meta;
  for (const [field, want] of Object.entries(expected) as [keyof SnapshotMeta, unknown][]) {
    if (meta[field] !== want) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `the host wrote ${field} ${JSON.stringify(meta[field])}, the daemon asked for ${JSON.stringify(want)}; not sealed` });
    }
  }
  const stateSha256 = createHash('sha256').update(buf).digest('hex');
  writeFileDurable(join(root, id, MAC_FILE), Buffer.from(JSON.stringify({ format: MAC_FORMAT, stateSha256, mac: macOf(key, id, stateSha256) })));
  return stateSha256;
}

/**
 * Checks the seal of snapshot `id` and of every snapshot of its base chain, reading each state
 * file once. Returns the sha256 of each state file verified, by id: what a host must find when
 * it reads them. `beforeRead` is told each file's path just before it is read (seal-cache.ts
 * records the files' identities there). Throws THAW_SNAPSHOT_UNSEALED (no seal: an older Thaw
 * wrote it), THAW_SNAPSHOT_CORRUPT (a seal that does not match: forged or rewritten),
 * THAW_SNAPSHOT_NOT_FOUND.
 */
export function verifyChainSeals(root: string, key: Buffer, id: string, beforeRead: (path: string) => void = () => {}): Record<string, string> {
  const digests: Record<string, string> = {};
  let next: string | null = id;
  while (next !== null) {
    if (digests[next] !== undefined) throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `base chain loops at '${next}'` });
    const at: string = next;
    let buf: Buffer;
    try {
      beforeRead(join(root, at, STATE_FILE));
      buf = readFileSync(join(root, at, STATE_FILE));
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ThawError('THAW_SNAPSHOT_NOT_FOUND', { id: at });
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: at, detail: `cannot read state file: ${(err as Error).message}` }, { cause: err });
    }
    const stateSha256 = createHash('sha256').update(buf).digest('hex');
    let seal: { format?: unknown; stateSha256?: unknown; mac?: unknown };
    try {
      beforeRead(join(root, at, MAC_FILE));
      seal = JSON.parse(readFileSync(join(root, at, MAC_FILE), 'utf8')) as typeof seal;
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ThawError('THAW_SNAPSHOT_UNSEALED', { id: at });
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: at, detail: `unreadable ${MAC_FILE}: ${(err as Error).message}` }, { cause: err });
    }
    const want = Buffer.from(macOf(key, at, stateSha256), 'hex');
    const got = typeof seal.mac === 'string' ? Buffer.from(seal.mac, 'hex') : Buffer.alloc(0);
    if (seal.format !== MAC_FORMAT || got.length !== want.length || !timingSafeEqual(got, want)) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id: at, detail: 'its state file does not match its MAC: not sealed by this daemon (forged or rewritten)' });
    }
    digests[at] = stateSha256;
    const meta = decodeState(at, buf).meta;
    next = meta.kind === 'diff' ? meta.baseId : null;
  }
  return digests;
}

export const ARTEFACTS_MAC_FILE = 'artefacts.mac';
const ARTEFACTS_FORMAT = 'thaw-artefacts-1';

function artefactsMacOf(key: Buffer, id: string, digests: Readonly<Record<string, string>>): string {
  const lines = Object.keys(digests).sort().map((name) => `${name} ${digests[name]}\n`).join('');
  return createHmac('sha256', key).update(`thaw-artefacts-v1\n${id}\n${lines}`).digest('hex');
}

function sealedArtefactNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter(isSealedArtefact).sort();
  } catch {
    return [];
  }
}

/**
 * Seals every artefact now beside snapshot `id` (writes artefacts.mac atomically and durably).
 * Only for files the daemon itself just built or adopted: sealing makes them its word. Returns
 * the digests sealed, by name.
 */
export function sealArtefacts(root: string, key: Buffer, id: string): Record<string, string> {
  const dir = join(root, id);
  const digests: Record<string, string> = {};
  for (const name of sealedArtefactNames(dir)) digests[name] = digestOf(readSealedPart(join(dir, name), name));
  const seal = { format: ARTEFACTS_FORMAT, artefacts: digests, mac: artefactsMacOf(key, id, digests) };
  writeFileDurable(join(dir, ARTEFACTS_MAC_FILE), Buffer.from(JSON.stringify(seal)));
  return digests;
}

/** What checkArtefactSeals found. */
export interface ArtefactSeals {
  /** sha256 of each sealed artefact's sealed part, by name: what a host must find. */
  readonly digests: Record<string, string>;
  /** Artefacts present but not covered by the seal (or not matching it): the caller removes them. */
  readonly unsealed: string[];
}

/**
 * Checks snapshot `id`'s artefact seal with the daemon's key (no seal yet: nothing is sealed)
 * and each artefact present against it. `beforeRead` is told the path of the seal file, of the
 * snapshot's directory and of each artefact just before it is read or listed. Throws
 * THAW_SNAPSHOT_CORRUPT when the seal file itself is unreadable or its MAC does not match
 * (forged or rewritten).
 */
export function checkArtefactSeals(root: string, key: Buffer, id: string, beforeRead: (path: string) => void = () => {}): ArtefactSeals {
  const dir = join(root, id);
  let digests: Record<string, string> = {};
  let raw: string | undefined;
  try {
    beforeRead(join(dir, ARTEFACTS_MAC_FILE));
    raw = readFileSync(join(dir, ARTEFACTS_MAC_FILE), 'utf8');
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `unreadable ${ARTEFACTS_MAC_FILE}: ${(err as Error).message}` }, { cause: err });
    }
  }
  if (raw !== undefined) {
    let seal: { format?: unknown; artefacts?: unknown; mac?: unknown };
    try {
      seal = JSON.parse(raw) as typeof seal;
    } catch (err: unknown) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `${ARTEFACTS_MAC_FILE} is not JSON` }, { cause: err });
    }
    const a = seal.artefacts;
    const shaped = typeof a === 'object' && a !== null && !Array.isArray(a) &&
      Object.entries(a).every(([name, d]) => isSealedArtefact(name) && typeof d === 'string' && /^[0-9a-f]{64}$/.test(d));
    const got = typeof seal.mac === 'string' ? Buffer.from(seal.mac, 'hex') : Buffer.alloc(0);
    const want = shaped ? Buffer.from(artefactsMacOf(key, id, a as Record<string, string>), 'hex') : Buffer.alloc(32);
    if (seal.format !== ARTEFACTS_FORMAT || !shaped || got.length !== want.length || !timingSafeEqual(got, want)) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `${ARTEFACTS_MAC_FILE} does not match its MAC: not sealed by this daemon (forged or rewritten)` });
    }
    digests = { ...(a as Record<string, string>) };
  }
  const unsealed: string[] = [];
  beforeRead(dir);
  const present = sealedArtefactNames(dir);
  for (const name of present) {
    if (digests[name] !== undefined) beforeRead(join(dir, name));
    if (digests[name] === undefined || digestOf(readSealedPart(join(dir, name), name)) !== digests[name]) {
      unsealed.push(name);
      delete digests[name];
    }
  }
  for (const name of Object.keys(digests)) if (!present.includes(name)) delete digests[name];
  return { digests, unsealed };
}
