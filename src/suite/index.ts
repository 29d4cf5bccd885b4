// The suite registry: every benchmark function, by name.

import type { SuiteFunction } from './suite.js';
import { PYTHON_SUITE } from './python-functions.js';
import { NATIVE_SUITE } from './native-functions.js';

export const SUITE: readonly SuiteFunction[] = [...PYTHON_SUITE, ...NATIVE_SUITE];

export function suiteFunction(name: string): SuiteFunction {
  const fn = SUITE.find((f) => f.name === name);
  if (!fn) throw new Error(`unknown suite function '${name}' (known: ${SUITE.map((f) => f.name).join(', ')})`);
  return fn;
}

export type { SuiteFunction, SuiteInput, SuiteReply } from './suite.js';
