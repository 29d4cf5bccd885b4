// What a restore trusts of a strategy artefact beside a snapshot, and the check that it is what
// the daemon sealed. Every artefact format here begins with a header and a table whose entries
// carry the checksums of everything after them (a working set is all header and table), so
// sealing that prefix, the "sealed part", makes the whole file the daemon's word: the bytes after
// it are checked against those checksums as they are read.
//
//   artefact                              sealed part: [0, header + count x entry + 4), count u32 at +16
//   ws.reap (working-set.ts)              header 20, entry 8 (the whole file)
//   ls.faasnap (faasnap-loading-set.ts)   header 28, entry 12 (the page data crc is in the header)
//   sabre-*.img, thaw-sparse-*.img        header 24, entry 28 (a crc32 per partition)
//     (sabre-image.ts)
//
// Not sealed, because the sealed state file already authenticates their bytes wherever they are
// checked: flat.img (a diff chain's image: the state's page and chunk checksums), the tmpfs copy
// of dram and the pass pool slot (chunk checksums on every read).
//
// The daemon seals (snapshot-seal.ts sealArtefacts, with its key) what it built or adopted and
// hands a sandbox host the sha256 of each sealed part in the restore request; the host registers
// them here (expectArtefacts) and every reader checks the part it read (checkArtefact) before it
// trusts a byte of it. A process without expectations (the daemon's prepare worker, tests,
// benchmarks) checks nothing here: it builds or verifies artefacts against the state file itself.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { ThawError } from '../core/errors.js';
import { readAt } from './snapshot-image.js';

/** Artefact files a restore reads beside a snapshot, with the layout of their sealed part. */
const SEALED: readonly { readonly name: RegExp; readonly headerBytes: number; readonly entryBytes: number }[] = [
  { name: /^ws\.reap$/, headerBytes: 20, entryBytes: 8 },
  { name: /^ls\.faasnap$/, headerBytes: 28, entryBytes: 12 },
  { name: /^(sabre(-reap)?|thaw-sparse)-[a-z0-9]+-\d+\.img$/, headerBytes: 24, entryBytes: 28 },
];

/** True when `name` is an artefact whose sealed part a restore checks. */
export function isSealedArtefact(name: string): boolean {
  return SEALED.some((s) => s.name.test(name));
}

/** sha256 (hex) of a sealed part. */
export function digestOf(part: Uint8Array): string {
  return createHash('sha256').update(part).digest('hex');
}

/**
 * Reads the sealed part of artefact `name` at `path` (header and table, by its own count). A file
 * too short for the table it announces yields what there is: its digest then matches no seal of
 * a well-formed file. Throws THAW_INTERNAL for a name that is not a sealed artefact.
 */
export function readSealedPart(path: string, name: string): Buffer {
  const layout = SEALED.find((s) => s.name.test(name));
  if (layout === undefined) throw new ThawError('THAW_INTERNAL', { detail: `${name} is not a sealed artefact` });
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 20));
    readAt(fd, head, 0);
    const count = head.length >= 20 ? head.readUInt32LE(16) : 0;
    const part = Buffer.alloc(Math.min(size, layout.headerBytes + count * layout.entryBytes + 4));
    readAt(fd, part, 0);
    return part;
  } finally {
    closeSync(fd);
  }
}

/** Sealed-part digests a restore of each snapshot must find, by snapshot id, then artefact name. */
const expected = new Map<string, Readonly<Record<string, string>>>();

/**
 * Makes readers of snapshot `id`'s artefacts in this process check them against `digests` (the
 * daemon's seal, by artefact name); undefined: stop checking them. A sandbox host calls it with
 * each restore request.
 */
export function expectArtefacts(id: string, digests: Readonly<Record<string, string>> | undefined): void {
  if (digests === undefined) expected.delete(id);
  else expected.set(id, digests);
}

/**
 * False when this process restores snapshot `id` under the daemon's seal (expectArtefacts) and
 * the seal has no `name`: the artefact was not there when the daemon prepared this restore. For
 * an artefact a restore records (a working set, a loading set), that is a concurrent first
 * restore's recording adopted since: this restore treats it as absent and records too (the
 * daemon keeps the first one adopted), instead of refusing a snapshot that is fine.
 */
export function sealedForThisRestore(id: string, name: string): boolean {
  const digests = expected.get(id);
  return digests === undefined || Object.hasOwn(digests, name);
}

/**
 * Checks the sealed part `part` of artefact `name` of snapshot `id` against the daemon's seal, when
 * this process was given one (expectArtefacts). Throws THAW_SNAPSHOT_CORRUPT naming the artefact
 * when it is not sealed or its bytes are not the sealed ones.
 */
export function checkArtefact(id: string, name: string, part: Uint8Array): void {
  const digests = expected.get(id);
  if (digests === undefined) return;
  const want = Object.hasOwn(digests, name) ? digests[name] : undefined;
  if (want === undefined) {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `artefact ${name} is not sealed by this daemon (written behind its back); not used` });
  }
  if (digestOf(part) !== want) {
    throw new ThawError('THAW_SNAPSHOT_CORRUPT', { id, detail: `artefact ${name} does not match the daemon's seal (forged or rewritten); not used` });
  }
}
