// The error catalogue: every error Thaw raises is declared here once, with a stable
// code, an HTTP status and a message template. Callers match on `code`, never on text.

/** One catalogue entry: status and message template ({name} placeholders). */
interface ErrorEntry {
  readonly status: number;
  readonly message: string;
}

/** Every error code, grouped by area. The docs in docs/errors.md are checked against this. */
export const ERRORS = {
  // config and requests
  THAW_CONFIG_INVALID: { status: 400, message: 'invalid configuration: {detail}' },
  THAW_REQUEST_INVALID: { status: 400, message: 'invalid request: {detail}' },
  THAW_ROUTE_NOT_FOUND: { status: 404, message: 'no route {method} {url}' },
  THAW_UNAUTHORIZED: { status: 401, message: 'a valid bearer token is required' },
  THAW_DAEMON_UNREACHABLE: { status: 503, message: 'cannot reach the Thaw daemon at {url}: {detail} (is `thaw daemon` running there?)' },
  THAW_REPORT_NOT_FOUND: { status: 404, message: "no experiment report '{path}' in the results directory" },
  // functions
  THAW_FUNCTION_NOT_FOUND: { status: 404, message: "function '{name}' not found" },
  THAW_FUNCTION_EXISTS: { status: 409, message: "function '{name}' already exists" },
  THAW_MODULE_INVALID: { status: 400, message: 'module is not valid WebAssembly: {detail}' },
  THAW_SOURCE_INVALID: { status: 400, message: 'handler source is invalid: {detail}' },
  THAW_MODULE_NOT_WASI: { status: 400, message: 'module is not a WASI preview1 module: {detail}' },
  THAW_HANDLER_MISSING: { status: 400, message: "handler '{handler}' is not exported by the {what}" },
  THAW_RUNTIME_UNKNOWN: { status: 400, message: "unknown runtime '{runtime}' (expected wasi, python or firecracker)" },
  // sandboxes
  THAW_SANDBOX_NOT_FOUND: { status: 404, message: "sandbox '{id}' not found" },
  THAW_NO_WARM_SANDBOX: { status: 404, message: "function '{name}' has no sandbox: invoke it cold or from a snapshot first" },
  THAW_SANDBOX_BUSY: { status: 409, message: "sandbox '{id}' is busy with another invocation" },
  THAW_SANDBOX_DIED: { status: 500, message: "sandbox '{id}' died: {detail}" },
  THAW_POOL_EXHAUSTED: { status: 503, message: 'no free sandbox host: {detail}' },
  // invocations
  THAW_INPUT_TOO_LARGE: { status: 413, message: 'input of {sizeBytes} bytes exceeds the limit of {limitBytes} bytes for {name}' },
  THAW_GUEST_TRAP: { status: 502, message: "function '{name}' trapped: {detail}" },
  THAW_GUEST_ERROR: { status: 502, message: "function '{name}' raised an error: {detail}" },
  THAW_GUEST_OOM: { status: 502, message: "function '{name}' ran out of memory (limit {limitMiB} MiB): {detail}" },
  THAW_TIMEOUT: { status: 504, message: "function '{name}' timed out after {timeoutMs} ms" },
  // snapshots
  THAW_SNAPSHOT_NOT_FOUND: { status: 404, message: "snapshot '{id}' not found" },
  THAW_SNAPSHOT_CORRUPT: { status: 500, message: "snapshot '{id}' is corrupt: {detail}" },
  THAW_SNAPSHOT_VERSION: { status: 409, message: "snapshot '{id}' does not match: {detail}" },
  THAW_SNAPSHOT_IN_USE: { status: 409, message: "snapshot '{id}' is the base of diff snapshot(s) {children}" },
  // snapshot integrity (issue 9 item 4): seals made with the daemon's key
  THAW_SNAPSHOT_UNSEALED: { status: 409, message: "snapshot '{id}' has no MAC (written by an older Thaw): delete it and take it again (`thaw invoke <function> --mode cold --snapshot-after`, or `thaw snapshots create <sandbox-id>`)" },
  // strategies and objects
  THAW_STRATEGY_UNKNOWN: { status: 400, message: "unknown restore strategy '{strategy}' (known: {known})" },
  THAW_STRATEGY_UNAVAILABLE: { status: 501, message: "strategy '{strategy}' unavailable: {reason}" },
  THAW_OBJECT_NOT_FOUND: { status: 404, message: "object '{key}' not found in the {store} store" },
  THAW_OBJECT_STORE: { status: 503, message: 'object store {store} failed: {detail}' },
  THAW_INTERNAL: { status: 500, message: 'internal error: {detail}' },
  // ---- issue 9 item 5 (defects): busy functions, request and output bounds, storage, HTTP errors
  THAW_OUTPUT_TOO_LARGE: { status: 502, message: "function '{name}' wrote more than its limit of {limitBytes} output bytes (maxOutputBytes)" },
  THAW_INIT_TIMEOUT: { status: 504, message: "function '{name}': {phase} did not finish within its initTimeoutMs of {initTimeoutMs} ms" },
  THAW_BODY_TOO_LARGE: { status: 413, message: 'request body of {sizeBytes} bytes exceeds the limit of {limitBytes} bytes for {route}' },
  THAW_URI_TOO_LONG: { status: 414, message: 'request URL too long: {detail}' },
  THAW_MEDIA_TYPE_UNSUPPORTED: { status: 415, message: "unsupported content type '{contentType}' for {route}" },
  THAW_STORAGE_FULL: { status: 507, message: 'no space left to write {what}: {detail}' },
  // ---- issue 13 (bring your own code): WASI commands and function bundles
  THAW_COMMAND_FAILED: { status: 502, message: "function '{name}' exited with code {exitCode}{stderr}" },
  THAW_BUNDLE_INVALID: { status: 400, message: 'function bundle is incomplete: {detail}' },
  THAW_FUNCTION_BUSY: { status: 429, message: "every sandbox of function '{name}' stayed busy for {waitedMs} ms: retry later, or invoke it cold or from a snapshot" },
  // ---- issue 11 (FaaSMem): offloading a sandbox's idle memory
  THAW_OFFLOAD_UNAVAILABLE: { status: 409, message: "sandbox '{id}' cannot offload to the {tier} tier: {reason}" },
  THAW_MEMORY_SERVER_LOST: { status: 502, message: "sandbox '{id}' lost offloaded memory: {detail}; the sandbox is discarded" },
} as const satisfies Record<string, ErrorEntry>;

export type ErrorCode = keyof typeof ERRORS;

/** Base class of every error Thaw throws on purpose. */
export class ThawError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly params: Readonly<Record<string, string | number>>;
  /** The trace the failed request was recorded in, when it was traced (docs/tracing.md). */
  traceId?: string;

  constructor(code: ErrorCode, params: Record<string, string | number> = {}, options?: { cause?: unknown }) {
    super(formatMessage(ERRORS[code].message, params), options);
    this.name = 'ThawError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.params = params;
  }

  /** The wire shape used in HTTP error replies and across the sandbox-host channel. */
  toJSON(): { code: ErrorCode; status: number; message: string; params: Record<string, string | number> } {
    return { code: this.code, status: this.status, message: this.message, params: { ...this.params } };
  }

  /** Rebuilds an error from its wire shape (e.g. one sent by a sandbox host). */
  static fromJSON(wire: { code: string; params?: Record<string, string | number>; message?: string }): ThawError {
    if (wire.code in ERRORS) return new ThawError(wire.code as ErrorCode, wire.params ?? {});
    return new ThawError('THAW_INTERNAL', { detail: wire.message ?? wire.code });
  }
}

function formatMessage(template: string, params: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => (key in params ? String(params[key]) : `{${key}}`));
}

/** Throws THAW_INTERNAL when an internal invariant does not hold. */
export function invariant(condition: unknown, detail: string): asserts condition {
  if (!condition) throw new ThawError('THAW_INTERNAL', { detail });
}

/** Wraps anything thrown into a ThawError, keeping ThawErrors as they are. */
export function toThawError(err: unknown): ThawError {
  if (err instanceof ThawError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  if (isStorageFull(err)) return new ThawError('THAW_STORAGE_FULL', { what: 'data', detail }, { cause: err });
  return new ThawError('THAW_INTERNAL', { detail }, { cause: err });
}

/** True for a write refused because the file system is full (ENOSPC) or a quota is spent (EDQUOT). */
export function isStorageFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
