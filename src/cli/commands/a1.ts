// `thaw a1 [config]`: Faascale's A1, vertical against horizontal hosts on a replayed day (see
// harness/a1.ts). Runs `thaw replay`'s machinery on an A1 config (default: the shipped a1-day),
// then adds the per-window host and instance counts for each window length.

import { A1_CONFIG_DIR, loadA1Config, writeA1Outputs } from '../../harness/a1.js';
import { hostRssBytes } from '../../harness/host-rss.js';
import type { GlobalOptions } from '../context.js';
import { replayAndReport, replayFlagOverrides, type ReplayOptions } from './replay.js';

/** Hosts' memory is read from this machine's /proc: only when they run here. */
function hostsRunHere(g: GlobalOptions): boolean {
  const url = g.daemon ?? process.env.THAW_DAEMON;
  if (url === undefined || url === '') return true;
  try {
    return ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);
  } catch {
    return false;
  }
}

export async function runA1Command(g: GlobalOptions, config: string | undefined, o: ReplayOptions): Promise<void> {
  const { params, config: cfg } = loadA1Config(config ?? 'a1-day', replayFlagOverrides(o));
  process.stderr.write(`thaw a1: windows of ${params.windowsS.join(', ')} s (trace time); configs in ${A1_CONFIG_DIR}\n`);
  await replayAndReport(g, params.replay, cfg, o, {
    ...(hostsRunHere(g) && { hostMemory: hostRssBytes }),
    report: (run, dir) => writeA1Outputs(run, dir, params.windowsS),
  });
}
