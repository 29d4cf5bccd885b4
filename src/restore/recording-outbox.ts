// Where a restore writes what it records (reap's working set, FaaSnap's loading set): beside
// the snapshot, or, in a jailed sandbox host, which may not write there, into an outbox in its
// scratch directory: the daemon adopts those files into the snapshot's directory after the
// invocation (Platform.adoptRecorded), so a host can never change a snapshot's files.

import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';

/** Files a restore may record for a snapshot: the only names the daemon adopts from an outbox. */
export const RECORDED_FILES = ['ws.reap', 'ls.faasnap'] as const;

let outbox: string | null = null;

/** Makes this process write recorded artefacts under `dir` (one subdirectory per snapshot id). */
export function setRecordingOutbox(dir: string | null): void {
  outbox = dir;
}

/** The directory to write the artefacts recorded for the snapshot in `snapshotDir` into (created). */
export function recordingDir(snapshotDir: string): string {
  if (outbox === null) return snapshotDir;
  const dir = join(outbox, basename(snapshotDir));
  mkdirSync(dir, { recursive: true });
  return dir;
}
