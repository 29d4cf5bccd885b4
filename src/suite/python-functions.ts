// Suite functions on the python runtime (filled in by the function-suite work).
import type { SuiteFunction } from './suite.js';
export const PYTHON_SUITE: readonly SuiteFunction[] = [];
