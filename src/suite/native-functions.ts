// Suite functions on the wasi runtime (filled in by the function-suite work).
import type { SuiteFunction } from './suite.js';
export const NATIVE_SUITE: readonly SuiteFunction[] = [];
