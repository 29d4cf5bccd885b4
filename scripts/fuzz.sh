#!/usr/bin/env bash
# Long fuzz run (`npm run fuzz`): every *.fuzz.test.ts property with a random seed, printed as
# "fuzz <property>: seed=<n>". Scale with FUZZ_RUNS (cases per property) and/or FUZZ_SECONDS
# (time per property; default 30 when neither is set). Replay a failure with FUZZ_SEED=<seed>
# and FUZZ_PATH=<path from fast-check's report> on the one file, e.g.
#   FUZZ_SEED=123 FUZZ_PATH=4:1:0 node --test --test-name-pattern='decodeState' dist/core/snapshot-format.fuzz.test.js
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
if [ -z "${FUZZ_RUNS:-}" ] && [ -z "${FUZZ_SECONDS:-}" ]; then export FUZZ_SECONDS=30; fi
mapfile -t files < <(find dist -name '*.fuzz.test.js' | sort)
# Long runs take minutes per file: the test runner's default timeout (none) stays, and files run one at a time.
node --test --test-concurrency=1 "${files[@]}"
