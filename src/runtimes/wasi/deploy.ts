// Deploy side of the wasi runtime: checks that a module is a WASI preview1 reactor that follows
// the Thaw ABI (docs/abi.md), then stores it rewritten to export its mutable globals and memory.

import { ThawError } from '../../core/errors.js';
import type { FunctionParams } from '../../core/function-spec.js';
import type { DeployedArtefact, RuntimeDeployer } from '../runtime.js';
import {
  COMMAND_EXPORT, HANDLER_TYPE, INIT_EXPORT, INITIALIZE_EXPORT, THAW_IMPORTS, THAW_MODULE, VOID_TYPE,
  WASI_MODULE, WASI_PREVIEW1_FUNCTIONS, formatType, sameType,
} from './abi.js';
import { checkCommand, commandBundle, isCommand } from './command-deploy.js';
import { exportMutableGlobals, parseWasm, type FuncType, type WasmModuleInfo } from './wasm-binary.js';

/** File name of the stored artefact. */
export const WASI_ARTEFACT_FILE = 'module.wasm';

/** Value types a snapshot can capture as a decimal string. */
const SNAPSHOTTABLE_GLOBAL_TYPES: ReadonlySet<string> = new Set(['i32', 'i64', 'f32', 'f64']);

/**
 * The wasi deployer. deploy() validates the module (WebAssembly.validate and parseWasm), checks
 * it against the Thaw ABI and returns it rewritten by exportMutableGlobals as `module.wasm`.
 * Throws THAW_MODULE_INVALID (malformed, or a global Thaw cannot snapshot), THAW_MODULE_NOT_WASI
 * (foreign import, no memory, a command module) and THAW_HANDLER_MISSING.
 */
export const wasiDeployer: RuntimeDeployer = {
  id: 'wasi',
  async deploy(fn: FunctionParams, source: Uint8Array): Promise<DeployedArtefact> {
    const info = parseWasm(source);
    await checkEngineAccepts(source);
    checkImports(info);
    const memory = checkMemory(info);
    checkGlobals(info);
    const command = isCommand(info);
    if (command) checkCommand(fn, info);
    else checkExports(fn, info);
    const rewrite = exportMutableGlobals(source);
    const exported = (name: string): boolean => info.exports.some((e) => e.name === name && e.kind === 'function');
    return {
      fileName: WASI_ARTEFACT_FILE,
      bytes: rewrite.bytes,
      facts: {
        exports: info.exports.length,
        exportsAdded: rewrite.addedExports,
        mutableGlobalsExported: rewrite.globalExports.length,
        memoryExport: rewrite.memoryExport ?? '',
        initialMemoryPages: memory.minPages,
        maximumMemoryPages: memory.maxPages ?? -1,
        hasThawInit: exported(INIT_EXPORT),
        hasInitialize: exported(INITIALIZE_EXPORT),
        sizeBytes: rewrite.bytes.length,
        command,
      },
      ...(command ? { bundle: commandBundle(fn) } : {}),
    };
  },
};

/** The engine validates code bodies, which parseWasm skips; its message names the problem. */
async function checkEngineAccepts(source: Uint8Array): Promise<void> {
  if (WebAssembly.validate(source)) return;
  try {
    await WebAssembly.compile(source);
  } catch (err: unknown) {
    throw new ThawError('THAW_MODULE_INVALID', { detail: err instanceof Error ? err.message : String(err) }, { cause: err });
  }
  throw new ThawError('THAW_MODULE_INVALID', { detail: 'WebAssembly.validate rejected the module' });
}

export function notWasi(detail: string): never {
  throw new ThawError('THAW_MODULE_NOT_WASI', { detail });
}

export function functionType(info: WasmModuleInfo, typeIndex: number | undefined): FuncType | undefined {
  return typeIndex === undefined ? undefined : info.types[typeIndex];
}

function checkImports(info: WasmModuleInfo): void {
  for (const imp of info.imports) {
    const what = `import ${imp.module}.${imp.name}`;
    if (imp.module !== WASI_MODULE && imp.module !== THAW_MODULE) {
      notWasi(`${what}: imports may only come from '${WASI_MODULE}' and '${THAW_MODULE}'`);
    }
    if (imp.kind !== 'function') notWasi(`${what} is a ${imp.kind}; only functions may be imported`);
    if (imp.module === WASI_MODULE && !WASI_PREVIEW1_FUNCTIONS.has(imp.name)) notWasi(`${what} is not a WASI preview1 function`);
    if (imp.module === THAW_MODULE) {
      const expected = THAW_IMPORTS[imp.name];
      if (expected === undefined) notWasi(`${what} is not a Thaw host function (known: ${Object.keys(THAW_IMPORTS).join(', ')})`);
      const actual = functionType(info, imp.typeIndex);
      if (actual === undefined || !sameType(actual, expected)) {
        notWasi(`${what} has signature ${actual ? formatType(actual) : '?'}, expected ${formatType(expected)}`);
      }
    }
  }
}

function checkMemory(info: WasmModuleInfo): WasmModuleInfo['memories'][number]['limits'] {
  if (info.memories.length === 0) notWasi('the module defines no memory');
  if (info.memories.length > 1) notWasi(`the module has ${info.memories.length} memories; exactly one is supported`);
  return (info.memories[0] as WasmModuleInfo['memories'][number]).limits;
}

function checkGlobals(info: WasmModuleInfo): void {
  for (const g of info.globals) {
    if (g.mutable && !g.imported && !SNAPSHOTTABLE_GLOBAL_TYPES.has(g.valType)) {
      throw new ThawError('THAW_MODULE_INVALID', { detail: `mutable global ${g.index} has type ${g.valType}; snapshots can only hold i32, i64, f32 and f64 globals` });
    }
  }
}

function checkExports(fn: FunctionParams, info: WasmModuleInfo): void {
  const exportedFunction = (name: string): FuncType | undefined => {
    const e = info.exports.find((x) => x.name === name && x.kind === 'function');
    return e === undefined ? undefined : functionType(info, info.functionTypes[e.index]);
  };
  if (fn.command !== undefined) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `'command' applies to WASI commands (modules exporting ${COMMAND_EXPORT}); this module is a reactor` });
  }
  const handler = exportedFunction(fn.handler);
  if (handler === undefined) throw new ThawError('THAW_HANDLER_MISSING', { handler: fn.handler, what: 'module as a function' });
  if (!sameType(handler, HANDLER_TYPE)) {
    throw new ThawError('THAW_HANDLER_MISSING', { handler: fn.handler, what: `module with signature ${formatType(HANDLER_TYPE)} (it has ${formatType(handler)})` });
  }
  for (const name of [INITIALIZE_EXPORT, INIT_EXPORT]) {
    const t = exportedFunction(name);
    if (t !== undefined && !sameType(t, VOID_TYPE)) notWasi(`export ${name} has signature ${formatType(t)}, expected ${formatType(VOID_TYPE)}`);
  }
}
