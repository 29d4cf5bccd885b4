// A trace as the replay and the sandbox-count experiments use it: functions and invocations in
// the Azure Functions 2021 trace's terms (app, func, end_timestamp, duration; start = end -
// duration), whether generated (generate.ts) or read from a real file (read.ts).

/** How a function is triggered, and so how its invocations arrive (Azure 2019's trigger groups). */
export type Trigger = 'http' | 'queue' | 'event' | 'timer' | 'other';
export const TRIGGERS: readonly Trigger[] = ['http', 'queue', 'event', 'timer', 'other'];

/** Arrival process per trigger: HTTP and others Poisson, queue and event bursty, timer periodic. */
export const ARRIVAL_OF: Readonly<Record<Trigger, 'poisson' | 'bursty' | 'periodic'>> = {
  http: 'poisson', other: 'poisson', queue: 'bursty', event: 'bursty', timer: 'periodic',
};

export interface TraceFunction {
  /** Hashed app and function names as in the trace file. */
  readonly app: string;
  readonly func: string;
  /** Generated traces only: the trigger, the mean rate it was drawn with, its memory. */
  readonly trigger: Trigger | null;
  readonly ratePerMin: number | null;
  readonly memoryMb: number | null;
  /** Invocations of this function in the trace. */
  readonly invocations: number;
}

export interface TraceInvocation {
  /** Index into Trace.functions. */
  readonly fn: number;
  /** Seconds from the trace's start (its earliest start = 0). */
  readonly startS: number;
  readonly durationS: number;
}

export interface Trace {
  /** Where it came from: "generated <name> seed <n>" or the file read. */
  readonly source: string;
  /** Ranked by invocation count, most invoked first (ties by app then func). */
  readonly functions: readonly TraceFunction[];
  /** Sorted by startS. */
  readonly invocations: readonly TraceInvocation[];
  /** Seconds covered: generated traces their configured length, read traces the last start. */
  readonly durationS: number;
}

/** Ranks functions by invocation count (descending; ties by app, func) and renumbers invocations. */
export function rankFunctions(functions: readonly Omit<TraceFunction, 'invocations'>[], invocations: readonly TraceInvocation[]): { functions: TraceFunction[]; invocations: TraceInvocation[] } {
  const counts = new Array<number>(functions.length).fill(0);
  for (const inv of invocations) counts[inv.fn]!++;
  const order = functions.map((_, i) => i).sort((a, b) => counts[b]! - counts[a]! || cmp(functions[a]!.app, functions[b]!.app) || cmp(functions[a]!.func, functions[b]!.func));
  const rank = new Array<number>(functions.length);
  order.forEach((old, i) => (rank[old] = i));
  return {
    functions: order.map((i) => ({ ...functions[i]!, invocations: counts[i]! })),
    invocations: invocations.map((inv) => ({ ...inv, fn: rank[inv.fn]! })).sort((a, b) => a.startS - b.startS || a.fn - b.fn),
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The 2021 format: a header `app,func,end_timestamp,duration`, then one invocation per line. */
export function traceToCsv(t: Trace): string {
  const lines = ['app,func,end_timestamp,duration'];
  for (const inv of t.invocations) {
    const f = t.functions[inv.fn]!;
    lines.push(`${f.app},${f.func},${(inv.startS + inv.durationS).toFixed(6)},${inv.durationS.toFixed(6)}`);
  }
  return lines.join('\n') + '\n';
}
