// `auto`, the default restore strategy: picks a real strategy per snapshot and restore from what
// Thaw knows at that moment (image size and present bytes, whether the image is in the page
// cache, which artefacts are built, the restore times it has measured), and says why.
//
// It only picks strategies that check every byte they serve (eager; sabre; thaw when it loads
// the whole image; sealed, whose image the daemon checked once and sealed), so choosing for speed never trades away integrity: the mapping strategies
// (vanilla-cache, dram, faasnap) can be faster on large images but serve unchecked pages.
//
// The rules come from bench:restore's measurements on this machine (README, "bench:restore"):
// from a warm page cache eager (a memcpy from the cache, every chunk checked) is the fastest
// checked strategy on every example; from a cold cache sabre (reading lz4 partitions, decoding
// on several threads) and thaw (parallel reads into pre-faulted memory) beat eager by 1.3-1.7x on
// the 33-64 MiB heaps and tie it on tiny ones. Measured restore times override the rules once
// there are enough of them.

import { mincore } from '../native/index.js';
import { PAGE_BYTES, type PageRun } from '../core/snapshot-format.js';
import { LOAD_ALL_BYTES } from './strategies/thaw.js';

/** What `auto` knows of one snapshot when it chooses. */
export interface SnapshotFacts {
  /** Guest memory size of the snapshot. */
  readonly memoryBytes: number;
  /** Bytes of the pages the image holds (the rest is zero). */
  readonly presentBytes: number;
  /** Share of the present pages in the page cache now, 0..1. */
  readonly cachedFraction: number;
  /** Strategies whose artefacts are built and ready (a restore with them pays no prepare). */
  readonly prepared: ReadonlySet<string>;
  /** Whether each candidate can run on this host. */
  readonly supported: (strategy: string) => boolean;
}

export interface AutoChoice {
  readonly strategy: string;
  readonly reason: string;
  /** A strategy worth preparing in the background for the next restore of this snapshot. */
  readonly prepareNext?: string;
}

/** Images with at most this much present are restored by eager: every strategy is within noise there. */
export const TINY_IMAGE_BYTES = 1 << 20;
/** At least this share of the present pages in the page cache counts as a warm cache. */
export const WARM_CACHE_FRACTION = 0.9;
/** Measured restores per strategy and cache state before measurements override the rules. */
export const MIN_SAMPLES = 3;
/** Measurements kept per (snapshot, strategy, cache state): the newest ones. */
const KEEP_SAMPLES = 16;

type CacheState = 'warm' | 'cold' | 'any';

/** Strategies that do not read the snapshot's file: their times hold whatever the page cache holds. */
const CACHE_INDEPENDENT: ReadonlySet<string> = new Set(['sealed']);

/** Chooses per snapshot, and remembers how long restores took (time to first response). */
export class AutoStrategy {
  private readonly samples = new Map<string, number[]>();

  /** Records a restore of `snapshotId` with `strategy`: restore plus first handler, in ms. */
  record(snapshotId: string, strategy: string, cachedFraction: number, firstResponseMs: number): void {
    const key = sampleKey(snapshotId, strategy, CACHE_INDEPENDENT.has(strategy) ? 'any' : cacheState(cachedFraction));
    const list = this.samples.get(key) ?? [];
    list.push(firstResponseMs);
    if (list.length > KEEP_SAMPLES) list.shift();
    this.samples.set(key, list);
  }

  /** Forgets what was measured of a deleted or rewritten snapshot. */
  forget(snapshotId: string): void {
    for (const key of this.samples.keys()) if (key.startsWith(`${snapshotId}\0`)) this.samples.delete(key);
  }

  choose(snapshotId: string, facts: SnapshotFacts): AutoChoice {
    const cache = cacheState(facts.cachedFraction);
    const rule = ruleChoice(facts, cache);
    // Measurements beat rules: the fastest checked strategy measured often enough in this cache
    // state, if it beats what the rule picks (or the rule's pick has not been measured).
    const measured = CANDIDATES.filter((s) => facts.supported(s) && (s !== 'thaw' || facts.presentBytes <= LOAD_ALL_BYTES))
      .map((s) => ({ s, ms: median(this.samples.get(sampleKey(snapshotId, s, CACHE_INDEPENDENT.has(s) ? 'any' : cache)) ?? []) }))
      .filter((m): m is { s: string; ms: number } => m.ms !== undefined)
      .sort((a, b) => a.ms - b.ms);
    const best = measured[0];
    if (best && best.s !== rule.strategy) {
      const ruleMs = measured.find((m) => m.s === rule.strategy)?.ms;
      if (ruleMs === undefined || best.ms < ruleMs) {
        const against = ruleMs === undefined ? '' : `, ${rule.strategy} ${ruleMs.toFixed(1)} ms`;
        return { strategy: best.s, reason: `measured on this snapshot from a ${cache} cache: ${best.s} ${best.ms.toFixed(1)} ms median to first response${against}` };
      }
    }
    return rule;
  }
}

/** The strategies auto may pick: those that check every byte they serve (thaw only when it loads all). */
const CANDIDATES: readonly string[] = ['eager', 'sabre', 'thaw', 'sealed'];

/**
 * Images with at most this much present get a sealed image in the daemon's memory (its cost: their
 * present bytes, held; the daemon's table keeps at most 1 GiB). 128 MiB: mem64-c's 64 MiB and a
 * few pages were just over the 64 MiB this was, and restored 1.5x slower than sealed by rule.
 */
export const SEALED_MAX_PRESENT_BYTES = 128 * 1024 * 1024;

/**
 * Whether a new snapshot should get its sealed image at once, before its first restore (the
 * platform's sealAhead): auto would pick sealed for it once held. Tiny images stay eager.
 */
export function sealAheadWanted(facts: Pick<SnapshotFacts, 'presentBytes' | 'supported'>): boolean {
  return facts.presentBytes > TINY_IMAGE_BYTES && facts.presentBytes <= SEALED_MAX_PRESENT_BYTES && facts.supported('sealed');
}

function ruleChoice(facts: SnapshotFacts, cache: CacheState): AutoChoice {
  const present = mib(facts.presentBytes);
  if (facts.presentBytes <= TINY_IMAGE_BYTES) return { strategy: 'eager', reason: `a tiny image (${present} present): eager copies it in well under a millisecond` };
  const sealable = facts.presentBytes <= SEALED_MAX_PRESENT_BYTES && facts.supported('sealed');
  if (sealable && facts.prepared.has('sealed')) {
    return { strategy: 'sealed', reason: `the daemon holds this image's ${present} checked in a sealed memfd: sealed copies it without checking again (no one can have changed it)` };
  }
  const next = sealable ? { prepareNext: 'sealed' } : {};
  if (cache === 'warm') {
    return { strategy: 'eager', reason: `${pct(facts.cachedFraction)} of the image's ${present} is in the page cache: eager copies it from there and checks every chunk${sealable ? ' (a sealed image is being prepared for the next restore)' : ''}`, ...next };
  }
  const cold = `${pct(facts.cachedFraction)} of the image's ${present} is in the page cache`;
  if (facts.prepared.has('sabre') && facts.supported('sabre')) {
    return { strategy: 'sabre', reason: `${cold}: sabre reads its lz4 partitions and decodes them on several threads, checking each` };
  }
  if (facts.presentBytes <= LOAD_ALL_BYTES && facts.supported('thaw')) {
    return { strategy: 'thaw', reason: `${cold}: thaw reads the whole ${present} on parallel threads into pre-faulted memory and checks every byte`, ...(sealable ? next : facts.supported('sabre') && { prepareNext: 'sabre' }) };
  }
  return {
    strategy: 'eager',
    reason: `${cold} and no compressed image is built yet: eager reads and checks it all (sabre is being prepared for the next restore)`,
    ...(facts.supported('sabre') && { prepareNext: 'sabre' }),
  };
}

/** Bytes of the present pages of a chain's top image, and the share of them in the page cache. */
export function imageFacts(imageFd: number, imageBytes: number, runs: readonly PageRun[]): { presentBytes: number; cachedFraction: number } {
  let present = 0;
  for (const r of runs) present += r.pageCount;
  if (present === 0 || imageBytes === 0) return { presentBytes: 0, cachedFraction: 1 };
  const vec = mincore(imageFd, imageBytes);
  let cached = 0;
  for (const r of runs) {
    const end = Math.min(r.firstPage + r.pageCount, vec.length);
    for (let p = r.firstPage; p < end; p++) cached += vec[p]! & 1;
  }
  return { presentBytes: present * PAGE_BYTES, cachedFraction: cached / present };
}

function cacheState(fraction: number): CacheState {
  return fraction >= WARM_CACHE_FRACTION ? 'warm' : 'cold';
}

function sampleKey(snapshotId: string, strategy: string, cache: CacheState): string {
  return `${snapshotId}\0${strategy}\0${cache}`;
}

function median(list: readonly number[]): number | undefined {
  if (list.length < MIN_SAMPLES) return undefined;
  const sorted = [...list].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

function pct(f: number): string {
  return `${Math.round(f * 100)}%`;
}
