// What the daemon's seal checks proved, kept in memory so that a restore does not re-read and
// re-HMAC files that have not changed since (snapshot-seal.ts: verifyChainSeals,
// checkArtefactSeals). A result is reused while every file it was read from keeps its identity
// (device, inode, size, mtime, ctime: one stat each, 1-2 us); any change re-runs the full check.
//
// Why this is sound: a MAC check proves that (snapshot id, sha256 of its state file) and
// (snapshot id, artefact name, sha256 of its sealed part) were sealed with the daemon's key, a
// fact that never goes stale. What can go stale is that the files on disk still hold those
// bytes, and that is checked where the bytes are used, on every restore: the host refuses state
// files whose sha256 is not the one it is handed, and artefacts whose sealed part is not
// (restore/artefact-seal.ts); every page it serves is checked against the checksums of those
// sealed files. So a change the identity misses (bit rot below the filesystem, or a rewrite in
// the same coarse clock tick as the file's previous change) fails that restore in the host
// with THAW_SNAPSHOT_CORRUPT; it can never make a host serve bytes the daemon did not seal. The
// identity check only makes the daemon notice a rewritten file itself, before taking a host,
// with the same errors as before (and remove unsealed artefacts so they are built again).

import { statSync } from 'node:fs';
import { checkArtefactSeals, verifyChainSeals, type ArtefactSeals } from './snapshot-seal.js';

/** A file's identity as one stat sees it, or 'absent'. */
function identityOf(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : 'absent';
}

interface Proven<T> {
  readonly result: T;
  /** Each file the check read or listed, with its identity just before that. */
  readonly files: readonly (readonly [string, string])[];
}

/** Runs `check`, recording the identity of each file it reads just before it reads it. */
function proven<T>(check: (beforeRead: (path: string) => void) => T): Proven<T> {
  const files: [string, string][] = [];
  const result = check((path) => void files.push([path, identityOf(path)]));
  return { result, files };
}

function unchanged(p: Proven<unknown>): boolean {
  return p.files.every(([path, identity]) => identityOf(path) === identity);
}

/** The seal checks of the snapshots under one root with one key, each kept while its files are unchanged. */
export class SealChecks {
  private readonly chains = new Map<string, Proven<Readonly<Record<string, string>>>>();
  private readonly artefacts = new Map<string, Proven<ArtefactSeals>>();

  constructor(private readonly root: string, private readonly key: Buffer) {}

  /** verifyChainSeals(id) (same result, same errors), reused while the chain's state and MAC files are unchanged. */
  chain(id: string): Readonly<Record<string, string>> {
    const known = this.chains.get(id);
    if (known && unchanged(known)) return known.result;
    this.chains.delete(id);
    const checked = proven((beforeRead) => verifyChainSeals(this.root, this.key, id, beforeRead));
    this.chains.set(id, checked);
    return checked.result;
  }

  /**
   * checkArtefactSeals(id) (same result, same errors), reused while the seal file, the snapshot's
   * directory listing and every sealed artefact are unchanged. A result that found unsealed
   * artefacts is not kept (the caller removes them, which changes the directory anyway).
   */
  artefactSeals(id: string): ArtefactSeals {
    const known = this.artefacts.get(id);
    if (known && unchanged(known)) return { digests: { ...known.result.digests }, unsealed: [] };
    this.artefacts.delete(id);
    const checked = proven((beforeRead) => checkArtefactSeals(this.root, this.key, id, beforeRead));
    if (checked.result.unsealed.length === 0) this.artefacts.set(id, checked);
    return { digests: { ...checked.result.digests }, unsealed: [...checked.result.unsealed] };
  }

  /** Forgets what was proven of snapshot `id` (deleted). */
  forget(id: string): void {
    this.chains.delete(id);
    this.artefacts.delete(id);
  }
}
