// Traces for trace-driven experiments (issue 11's replay, issue 10's sandbox counts): a generator
// with the Azure traces' published shape, a reader of real 2021-format files, and their shapes.

export { generateTrace, drawFunctions, readAzureMemory, FUNCTION_SHARE, INVOCATION_SHARE, DAILY_RATE_LOG10, DURATION_LN, type GeneratorParams } from './generate.js';
export { readTrace } from './read.js';
export { rankFunctions, traceToCsv, TRIGGERS, ARRIVAL_OF, type Trace, type TraceFunction, type TraceInvocation, type Trigger } from './types.js';
export { AZURE_MEMORY_FILE, loadReplayConfigFile, parseReplayConfig, type ReplayConfig, type ReplayParams } from './replay-config.js';
