/** Milliseconds since `t0` (performance.now()), to the microsecond. */
export function since(t0: number): number {
  return Math.round((performance.now() - t0) * 1000) / 1000;
}
