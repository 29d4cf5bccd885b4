// Deploy side of WASI commands (modules exporting `_start`, docs/abi.md "Commands"): what such a
// module must look like, and the bundle of directories it brings.

import type { FunctionParams } from '../../core/function-spec.js';
import { COMMAND_EXPORT, THAW_MODULE, VOID_TYPE, WIZER_INIT_EXPORT, INIT_EXPORT, formatType, sameType } from './abi.js';
import { bundleDigest, installBundle } from './command-bundle.js';
import { functionType, notWasi } from './deploy.js';
import type { WasmModuleInfo } from './wasm-binary.js';

/** True when the module is a WASI command: it exports a function `_start`. */
export function isCommand(info: WasmModuleInfo): boolean {
  return info.exports.some((e) => e.name === COMMAND_EXPORT && e.kind === 'function');
}

/**
 * Checks a command: `_start`, `wizer.initialize` and `thaw_init` are `() -> ()`, and it imports
 * nothing from `thaw` (a command's request is its stdin, its response its stdout).
 * Throws THAW_MODULE_NOT_WASI.
 */
export function checkCommand(_fn: FunctionParams, info: WasmModuleInfo): void {
  const thaw = info.imports.find((i) => i.module === THAW_MODULE);
  if (thaw !== undefined) notWasi(`it exports ${COMMAND_EXPORT} and imports ${THAW_MODULE}.${thaw.name}: a command reads its request from stdin and writes its response to stdout, the ${THAW_MODULE} imports are for reactors`);
  for (const name of [COMMAND_EXPORT, WIZER_INIT_EXPORT, INIT_EXPORT]) {
    const e = info.exports.find((x) => x.name === name && x.kind === 'function');
    const t = e === undefined ? undefined : functionType(info, info.functionTypes[e.index]);
    if (t !== undefined && !sameType(t, VOID_TYPE)) notWasi(`export ${name} has signature ${formatType(t)}, expected ${formatType(VOID_TYPE)}`);
  }
}

/** The directories a command brings, checked now (THAW_BUNDLE_INVALID) and copied when the function is stored. */
export function commandBundle(fn: FunctionParams): { digest: string; install(functionDir: string): void } {
  if (fn.command === undefined) return { digest: '', install: () => {} };
  const command = fn.command;
  return { digest: bundleDigest(command), install: (dir) => installBundle(command, dir) };
}
