#!/usr/bin/env node
// The `thaw` command: parses argv and hands each command to commands/. Prints `code: message`
// on failure and exits 2 for usage errors, 1 otherwise.

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ThawError } from '../core/errors.js';
import { runBenchCommand } from './commands/bench.js';
import { runDaemon } from './commands/daemon.js';
import { runDemo } from './commands/demo.js';
import { doctor } from './commands/doctor.js';
import { INIT_KINDS, runInit } from './commands/init.js';
import { runPageServer } from './commands/page-server.js';
import { logs } from './commands/logs.js';
import * as fn from './commands/functions.js';
import { runInvoke } from './commands/invoke.js';
import * as obj from './commands/objects.js';
import * as sb from './commands/sandboxes.js';
import * as sched from './commands/scheduler.js';
import { runReplayCommand } from './commands/replay.js';
import { runA1Command } from './commands/a1.js';
import * as snap from './commands/snapshots.js';
import type { GlobalOptions } from './context.js';

const program = new Command('thaw')
  .description('Thaw: serverless functions with cold starts from memory snapshots of WebAssembly sandboxes')
  .option('--daemon <url>', 'talk to a running daemon (default: $THAW_DAEMON; without it, run in-process)')
  .option('--token <token>', 'bearer token for the daemon (default: $THAW_TOKEN)')
  .option('--data-dir <dir>', 'data directory for in-process runs (default: $THAW_HOME or ~/.thaw)')
  .option('--object-store <store>', "'embedded' or a redis:// URL (in-process runs)")
  .exitOverride();

const g = (): GlobalOptions => program.opts<GlobalOptions>();

program.command('daemon')
  .description('run the Thaw daemon (HTTP API)')
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .option('--port <port>', 'port to bind (0 = any free port)', '7070')
  .option('--spare-hosts <n>', 'generic sandbox hosts kept ready (unjailed only: a jailed host is born for one function)', '1')
  .option('--prepared-per-function <n>', 'hosts kept with each used function compiled', '1')
  .option('--scrub-interval-s <s>', 'read and check every snapshot this often; a corrupt one is not restored (0 = only `thaw snapshots verify`)', '0')
  .option('--prepared-idle-s <s>', 'a function unused this long keeps no prepared host', '600')
  .option('--max-prepared-functions <n>', 'prepared hosts are kept for at most this many recently used functions', '8')
  .option('--max-host-starts <n>', 'sandbox host processes starting at once, at most; more starts queue (default: the machine\'s cores, at most 8)')
  .addOption(new Option('--layout <layout>', 'sandboxes per host process unless a manifest says: horizontal = one instance per host, vertical = several sharing the compiled module').choices(['horizontal', 'vertical']).default('horizontal'))
  .option('--instances-per-host <n>', 'instances one vertical host carries at most (a manifest\'s instancesPerHost overrides it)', '4')
  .addOption(new Option('--jail <mode>', 'jail sandbox hosts (see `thaw doctor`): auto = where the daemon can (root), required = refuse to start without').choices(['auto', 'required', 'off']).default('auto'))
  .option('--max-idle-sandboxes <n>', 'idle sandboxes kept for warm invocations', '16')
  .option('--max-sandboxes <n>', 'live sandboxes at most (each is a host process); beyond it requests get 503', '64')
  .option('--no-cgroups', 'do not put sandbox hosts in memory cgroups')
  .option('--keep-alive-s <s>', 'idle sandboxes expire after this many seconds', '600')
  .option('--memory-policy <id>', 'memory policy for idle sandboxes (none, or tmo, faasmem, ... where built)', 'none')
  .option('--log-level <level>', 'pino log level', 'info')
  .option('--trace-export <protocol=url>', 'export invocation traces, with the spans recorded inside sandbox hosts: zipkin=http://127.0.0.1:9411/api/v2/spans or otlp=http://127.0.0.1:4318/v1/traces (docs/tracing.md)')
  .option('--trace-sample-ratio <r>', 'share of invocations without a caller\'s traceparent that are traced (0..1)', '1')
  .option('--results-dir <dir>', 'the harness\'s results directory: the dashboard links the reports in it', 'results')
  .action((o) => runDaemon(g(), o));

program.command('deploy <manifest>')
  .description('deploy (or redeploy) a function from its manifest (function.json), or from a directory holding one')
  .action((m: string) => fn.deploy(g(), m));

program.command('init <kind> <dir>')
  .description(`write a small working function to start from: ${INIT_KINDS.join(', ')} (a manifest, sources and build.sh); then \`thaw deploy <dir>\``)
  .action((kind: string, dir: string) => runInit(kind, dir));

const fns = program.command('functions').alias('fn').description('list, show and delete functions');
fns.command('list').description('list deployed functions').action(() => fn.list(g()));
fns.command('get <name>').description('show a function').action((n: string) => fn.get(g(), n));
fns.command('delete <name>').description('delete a function and stop its sandboxes').action((n: string) => fn.remove(g(), n));

program.command('invoke <function>')
  .description('invoke a function: auto (an idle warm sandbox, else semi-warm, else the newest snapshot, else cold), or one path: cold (boot + init + handler), warm (an idle sandbox) or snapshot (restore + handler)')
  .addOption(new Option('--mode <mode>', 'invocation path').choices(['auto', 'cold', 'warm', 'snapshot']).default('auto'))
  .option('-d, --data <text>', 'input as text')
  .option('-f, --data-file <path>', 'input from a file (- for stdin)')
  .option('--sandbox <id>', 'warm: the sandbox to use')
  .option('--snapshot <id>', 'snapshot: the snapshot to restore (default: the newest)')
  .option('--strategy <id>', 'snapshot (and --mode auto when it restores): restore strategy (see `thaw strategies`), or auto: the platform picks one and says why', 'auto')
  .option('--no-keep', 'stop the sandbox after the invocation')
  .option('--json', 'print the whole result (output, timings) as JSON')
  .option('--snapshot-after', 'snapshot the sandbox after the invocation (prints its id)')
  .action((name: string, o) => runInvoke(g(), name, o));

const sbs = program.command('sandboxes').alias('sb').description('boot, list and stop sandboxes');
sbs.command('boot <function>').description('boot a sandbox cold and keep it idle').action((n: string) => sb.boot(g(), n));
sbs.command('list').description('list live sandboxes').action(() => sb.list(g()));
sbs.command('delete <id>').description('stop a sandbox').action((id: string) => sb.remove(g(), id));

program.command('scheduler')
  .description('show the keep-alive scheduler: policy, keep-alive, and cold/snapshot/warm/semi-warm starts per function')
  .option('--json', 'print the report as JSON').option('--reset-counts', 'set the start counts to zero (after printing nothing)')
  .action((o) => sched.show(g(), o));

const snaps = program.command('snapshots').alias('snap').description('create, list, show and delete snapshots');
snaps.command('create <sandbox>')
  .description('snapshot an idle sandbox')
  .option('--diff', 'a diff snapshot: only pages changed since the base')
  .option('--base <id>', 'diff: the base snapshot (default: the one the sandbox was restored from)')
  .action((id: string, o) => snap.create(g(), id, o));
snaps.command('list').option('--function <name>', 'only this function').description('list snapshots').action((o) => snap.list(g(), o));
snaps.command('get <id>').description('show a snapshot').action((id: string) => snap.get(g(), id));
snaps.command('prepare <id>')
  .description("build and verify a restore strategy's artefacts for a snapshot ahead of its first restore")
  .requiredOption('--strategy <id>', 'restore strategy')
  .action((id: string, o) => snap.prepare(g(), id, o));
program.command('logs <function>')
  .description("what a function's sandboxes wrote to stdout and stderr (kept by the daemon, newest lines)")
  .addOption(new Option('-n, --lines <n>', 'how many of the newest kept lines').default('100').argParser((v) => {
    if (!/^[1-9][0-9]{0,5}$/.test(v)) throw new InvalidArgumentError('a whole number from 1 to 100000');
    return v;
  }))
  .option('-f, --follow', 'keep printing new lines as they come (Ctrl-C stops)')
  .option('--json', 'one JSON object per line')
  .action((n: string, o) => logs(g(), n, o));
program.command('doctor').option('--json', 'print the report as JSON').description('show how sandbox hosts are confined here (the jail\'s layers)').action((o: { json?: boolean }) => doctor(g(), o));
program.command('strategies').description('list restore strategies and whether this host can run them').action(() => snap.strategies(g()));
snaps.command('verify <id>')
  .description('read every byte of a snapshot, its base chain and its artefacts and check every checksum')
  .action((id: string) => snap.verify(g(), id));
snaps.command('delete <id>').description('delete a snapshot').action((id: string) => snap.remove(g(), id));

const objs = program.command('objects').alias('obj').description('read and write the objects functions use');
objs.command('put <key>').option('-d, --data <text>', 'value as text').option('-f, --data-file <path>', 'value from a file (- for stdin)')
  .description('write an object').action((k: string, o) => obj.put(g(), k, o));
objs.command('get <key>').description('print an object').action((k: string) => obj.get(g(), k));
objs.command('list').option('--prefix <prefix>', 'only keys starting with it').description('list object keys').action((o) => obj.list(g(), o));
objs.command('delete <key>').description('delete an object').action((k: string) => obj.remove(g(), k));

program.command('demo')
  .description('deploy the example functions and print cold boot vs snapshot restore vs warm')
  .option('--runs <n>', 'invocations per path (median reported)', '5')
  .option('--only <names>', 'comma-separated example function names')
  .action((o) => runDemo(g(), o));

program.command('page-server').description("serve Firecracker microVMs' memory over its userfaultfd protocol (Uffd memory backend)").requiredOption('--socket <path>', 'Unix socket Firecracker connects to (mem_backend.backend_path)').requiredOption('--snapshot <path>', 'a Firecracker memory file or a Thaw snapshot directory').option('--strategy <id>', 'uffd (on demand), eager (fault all), reap (record, then replay the working set) or faasnap', 'uffd').option('--working-set <path>', 'reap: working-set file (default: beside the snapshot)').option('--jail <gid>', "run jailed (root only): its own uid, the snapshot's group <gid>, namespaces, Landlock, seccomp; the socket's directory must be new").action((o) => runPageServer(o));

program.command('bench <config>')
  .description('run an experiment from a JSON config (a path, or a shipped config: smoke, two-inputs, six-inputs, parallel, remote-storage-like)')
  .option('--output-dir <dir>', 'override output_dir (the global --object-store overrides object_store)')
  .option('--repeat <n>', 'override repeat').option('--validate-only', 'check the config and exit').option('--no-progress', 'no progress bar')
  .action((c: string, o) => runBenchCommand(g(), c, o));

program.command('replay <trace>')
  .description('replay a trace open loop against the daemon, per memory policy (a generator config: a path or a shipped name such as replay-ci, replay-hour; or a trace CSV in the Azure 2021 format)')
  .option('--functions <names>', 'suite functions the trace functions map to (comma-separated; default: the config\'s)')
  .option('--policies <ids>', 'settings to replay, comma-separated policy[:tier] (default: the config\'s)')
  .option('--time-scale <x>', 'trace seconds per real second (default: the config\'s)')
  .option('--window-s <s>', 'result window in trace seconds (default: the config\'s, else 60)')
  .option('--duration-s <s>', 'replay only the first this many trace seconds')
  .option('--output-dir <dir>', 'where results go (default: the config\'s, else results/)')
  .option('--no-progress', 'no progress bar')
  .action((t: string, o) => runReplayCommand(g(), t, o));

program.command('a1 [config]')
  .description('Faascale\'s A1: cold starts and host counts, vertical against horizontal hosts, replaying a generated day (an A1 config: a path or a shipped name, a1-day (default) or a1-ci)')
  .option('--time-scale <x>', 'trace seconds per real second (default: the config\'s)')
  .option('--duration-s <s>', 'replay only the first this many trace seconds')
  .option('--output-dir <dir>', 'where results go (default: the config\'s, else results/)')
  .option('--no-progress', 'no progress bar')
  .action((c: string | undefined, o) => runA1Command(g(), c, o));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof ThawError) {
    process.stderr.write(`${err.code}: ${err.message}\n`);
    if (err.traceId) process.stderr.write(`trace ${err.traceId}\n`);
    process.exit(1);
  }
  process.stderr.write(`THAW_INTERNAL: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
}
