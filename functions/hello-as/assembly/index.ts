// hello-as: replies "hello, <input>", like hello-c, written in AssemblyScript against the
// Thaw wasi ABI (docs/abi.md). Built with the stub runtime so it imports only from "thaw".

@external("thaw", "input_len")
declare function inputLen(): i32;
@external("thaw", "input_read")
declare function inputRead(ptr: usize, len: i32): i32;
@external("thaw", "output_write")
declare function outputWrite(ptr: usize, len: i32): void;

/** Replaces AssemblyScript's default `env.abort` import: a failed assertion traps. */
function thawAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  unreachable();
}

const GREETING = "hello, ";

/** The handler: `() -> i32`, 0 for success. */
export function handle(): i32 {
  const greeting = String.UTF8.encode(GREETING);
  outputWrite(changetype<usize>(greeting), greeting.byteLength);
  const len = inputLen();
  const input = new ArrayBuffer(len);
  const got = inputRead(changetype<usize>(input), len);
  outputWrite(changetype<usize>(input), got);
  return 0;
}
