// The Thaw wasi invocation ABI in one place (docs/abi.md explains it): which imports a guest
// may use, their signatures, and the exports the host looks for. Deploy checks modules
// against it; the adapter implements it.

import type { FuncType, ValType } from './wasm-binary.js';

/** Import module of the WASI preview1 system interface. */
export const WASI_MODULE = 'wasi_snapshot_preview1';
/** Import module of Thaw's own host functions. */
export const THAW_MODULE = 'thaw';
/** Optional export run once at boot, before init: the WASI reactor's libc constructor. */
export const INITIALIZE_EXPORT = '_initialize';
/** Optional export `() -> ()`: the function's init, run once on cold boot and captured by a snapshot. */
export const INIT_EXPORT = 'thaw_init';
/** An export that marks a WASI command (run-once program): run per invocation in a fresh instance. */
export const COMMAND_EXPORT = '_start';
/** Wizer's pre-initialisation export `() -> ()`: a command's init, run once on cold boot and captured by a snapshot. */
export const WIZER_INIT_EXPORT = 'wizer.initialize';

const sig = (params: ValType[], results: ValType[]): FuncType => ({ params, results });
const I32: ValType = 'i32';

/** Signature every handler export must have: no parameters, an i32 status (0 = ok). */
export const HANDLER_TYPE: FuncType = sig([], [I32]);
/** Signature of `_initialize` and `thaw_init`. */
export const VOID_TYPE: FuncType = sig([], []);

/** Host functions of module "thaw", with their signatures. Pointers and lengths are i32 byte counts. */
export const THAW_IMPORTS: Readonly<Record<string, FuncType>> = {
  input_len: sig([], [I32]),
  input_read: sig([I32, I32], [I32]),
  output_write: sig([I32, I32], []),
  object_len: sig([I32, I32], [I32]),
  object_read: sig([I32, I32, I32, I32], [I32]),
  object_write: sig([I32, I32, I32, I32], [I32]),
};

/** The WASI preview1 functions Node's node:wasi provides (Node 20). */
export const WASI_PREVIEW1_FUNCTIONS: ReadonlySet<string> = new Set([
  'args_get', 'args_sizes_get', 'clock_res_get', 'clock_time_get', 'environ_get', 'environ_sizes_get',
  'fd_advise', 'fd_allocate', 'fd_close', 'fd_datasync', 'fd_fdstat_get', 'fd_fdstat_set_flags',
  'fd_fdstat_set_rights', 'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'fd_pread',
  'fd_prestat_get', 'fd_prestat_dir_name', 'fd_pwrite', 'fd_read', 'fd_readdir', 'fd_renumber', 'fd_seek',
  'fd_sync', 'fd_tell', 'fd_write', 'path_create_directory', 'path_filestat_get', 'path_filestat_set_times',
  'path_link', 'path_open', 'path_readlink', 'path_remove_directory', 'path_rename', 'path_symlink',
  'path_unlink_file', 'poll_oneoff', 'proc_exit', 'proc_raise', 'random_get', 'sched_yield', 'sock_accept',
  'sock_recv', 'sock_send', 'sock_shutdown',
]);

/** Renders a signature as `(i32, i32) -> i32`. */
export function formatType(t: FuncType): string {
  const results = t.results.length === 0 ? '()' : t.results.length === 1 ? String(t.results[0]) : `(${t.results.join(', ')})`;
  return `(${t.params.join(', ')}) -> ${results}`;
}

/** True when two signatures are identical. */
export function sameType(a: FuncType, b: FuncType): boolean {
  return formatType(a) === formatType(b);
}
