// `thaw init <wasi-c|wasi-command|python> <dir>`: writes a small working function (source,
// manifest, build command) to start from; `thaw deploy <dir>` then deploys it.

import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../../core/errors.js';
import { writeFileDurable } from '../../snapshot/snapshot-io.js';

export const INIT_KINDS = ['wasi-c', 'wasi-command', 'python'] as const;
export type InitKind = (typeof INIT_KINDS)[number];

/** The ABI header every C reactor includes (docs/abi.md), copied into a wasi-c function. */
const THAW_H = fileURLToPath(new URL('../../../functions/include/thaw.h', import.meta.url));

/** A clang invocation that builds `src` into build/<out> (reactor: exports its handler; command: `_start`). */
function buildScript(src: string, out: string, reactor: boolean): string {
  const model = reactor ? ' -mexec-model=reactor -I .' : '';
  return `#!/bin/sh
# Builds ${out} from ${src} (Debian: apt-get install clang lld wasi-libc${reactor ? ' libclang-rt-14-dev-wasm32' : ''}).
set -e
cd "$(dirname "$0")"
mkdir -p build
clang --target=wasm32-wasi -O2${model} -o build/${out} ${src}
`;
}

/** The files of a new function named `name`, by relative path. */
function template(kind: InitKind, name: string): Record<string, string> {
  switch (kind) {
    case 'wasi-c':
      return {
        'function.json': JSON.stringify({ name, runtime: 'wasi', module: 'build/handler.wasm', memoryMiB: 32, handler: 'handle', description: 'C reactor: replies with its input reversed' }, null, 2) + '\n',
        'thaw.h': readFileSync(THAW_H, 'utf8'),
        'handler.c': `// A Thaw function in C (docs/abi.md): the request through thaw_input_read, the response through
// thaw_output_write. thaw_init (optional) is the init a snapshot captures.
#include <stdlib.h>
#include "thaw.h"

static int calls;

THAW_EXPORT("thaw_init") void thaw_init(void) { calls = 0; }

THAW_EXPORT("handle") int32_t handle(void) {
  int32_t len = thaw_input_len();
  char *buf = malloc((size_t)len + 1);
  if (buf == NULL) return 1;
  int32_t got = thaw_input_read(buf, len);
  for (int32_t i = 0; i < got / 2; i++) { char t = buf[i]; buf[i] = buf[got - 1 - i]; buf[got - 1 - i] = t; }
  thaw_output_write(buf, got);
  free(buf);
  calls++;
  return 0;
}
`,
        'build.sh': buildScript('handler.c', 'handler.wasm', true),
      };
    case 'wasi-command':
      return {
        'function.json': JSON.stringify({ name, runtime: 'wasi', module: 'build/main.wasm', memoryMiB: 32, description: 'WASI command: stdin in, stdout out (upper-cased)', command: { args: [], env: {} } }, null, 2) + '\n',
        'main.c': `// A WASI command (exports _start): each invocation runs it with the request on stdin; what it
// writes to stdout is the response, stderr goes to the function's log, exit code 0 = success.
#include <ctype.h>
#include <stdio.h>

int main(void) {
  int c;
  while ((c = getchar()) != EOF) putchar(toupper(c));
  fprintf(stderr, "done\\n");
  return 0;
}
`,
        'build.sh': buildScript('main.c', 'main.wasm', false),
      };
    case 'python':
      return {
        'function.json': JSON.stringify({ name, runtime: 'python', source: 'app/handler.py', bundle: 'app', requirements: [], memoryMiB: 128, description: 'Python: replies with a greeting' }, null, 2) + '\n',
        'app/handler.py': `# A Thaw function in Python (docs/python-runtime.md): the module's top level is the init a
# snapshot captures. Further modules and data files go in app/ (the manifest's "bundle"); pure-
# Python wheels or package directories go in vendor/, each listed in the manifest's "requirements".
from greeting import greet


def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else str(event)
    return {"message": greet(name), "function": context.function_name}
`,
        'app/greeting.py': `def greet(name):
    return "hello, %s" % name
`,
        'build.sh': `#!/bin/sh
# Nothing to build: a Python function deploys from its sources. Packages come from local files
# only (nothing is downloaded): put pure-Python wheels (*-py3-none-any.whl) or package directories
# in vendor/ and list them in function.json's "requirements", e.g. "vendor/mypkg". Pyodide's own
# pure-Python packages: name them in "packages" (e.g. ["six"]) and give "pyodidePackages", a local
# Pyodide package directory (docs/python-runtime.md, "Pyodide packages").
exit 0
`,
      };
  }
}

/** Writes a new function into `dir` (created; must be empty or absent). Returns the files written. Throws THAW_CONFIG_INVALID. */
export function initFunction(kind: string, dir: string): string[] {
  if (!(INIT_KINDS as readonly string[]).includes(kind)) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `unknown kind '${kind}' for thaw init (known: ${INIT_KINDS.join(', ')})` });
  }
  const root = resolve(dir);
  if (existsSync(root) && readdirSync(root).length > 0) throw new ThawError('THAW_CONFIG_INVALID', { detail: `${root} exists and is not empty` });
  const name = basename(root).toLowerCase().replace(/[^a-z0-9-_]/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 63) || 'my-function';
  const files = template(kind as InitKind, name);
  for (const [rel, text] of Object.entries(files)) {
    const path = join(root, rel);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileDurable(path, Buffer.from(text));
  }
  return Object.keys(files);
}

/** `thaw init`: writes the function and says how to build and deploy it. */
export function runInit(kind: string, dir: string): void {
  const files = initFunction(kind, dir);
  // The deploy command as this one was started: `thaw` is on PATH only after `npm link`.
  const script = process.argv[1] ?? '';
  const thaw = script.endsWith('.js') ? `node ${relative(process.cwd(), script) || script}` : 'thaw';
  process.stdout.write(`wrote ${files.map((f) => join(dir, f)).join(', ')}\nbuild:  sh ${join(dir, 'build.sh')}\ndeploy: ${thaw} deploy ${dir}\n`);
}
