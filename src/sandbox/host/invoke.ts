// A host's invoke op: runs one instance's handler on one input.

import { performance } from 'node:perf_hooks';
import { ThawError } from '../../core/errors.js';
import type { HostRequest, InvokeResult } from '../protocol.js';
import { invokeScaled } from '../../memory/scaling/host-hook.js';
import { instance, since } from './state.js';
import { hostSpan, setSpanAttributes } from './spans.js';

export async function invoke(req: Extract<HostRequest, { op: 'invoke' }>): Promise<InvokeResult> {
  const s = instance(req.sandboxId);
  const bytes = req.input;
  // IPC may hand a Buffer over; guests get a plain Uint8Array view of the same bytes.
  const input = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The function's memory scaling mechanism runs around the guest (src/memory/scaling/).
  let handlerMs = 0;
  const scaled = await invokeScaled(s.guest, s.fn.fn.params, s.image !== null, async () => {
    const th = performance.now();
    const out = await hostSpan('handler', { 'thaw.input_bytes': input.byteLength }, () => s.guest.invoke(input));
    handlerMs = since(th);
    return out;
  });
  const output = scaled.value;
  setSpanAttributes({ 'thaw.sandbox': req.sandboxId, 'thaw.output_bytes': output.byteLength });
  // Every runtime's output is bounded here, before it crosses to the daemon (wasi also stops
  // the guest at the write that passes the limit).
  const { name, maxOutputBytes } = s.fn.fn.params;
  if (output.byteLength > maxOutputBytes) throw new ThawError('THAW_OUTPUT_TOO_LARGE', { name, limitBytes: maxOutputBytes });
  // Lets the restore strategy react to the first invocation (reap ends its recording here).
  s.image?.afterInvoke();
  const result: InvokeResult = { timings: { ...scaled.timings, handlerMs }, output, memoryBytes: s.guest.memory.buffer.byteLength, memory: scaled.memory };
  // Restore stats as of now: page-server counts are complete only once a strategy stops its server.
  if (s.image) result.restore = { ...s.image.stats };
  return result;
}
