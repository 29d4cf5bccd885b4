#!/usr/bin/env bash
# Builds the example functions into functions/<name>/build/ and the C suite functions into
# functions/suite/<name>/build/, skipping those already up to date: C functions with clang
# (wasm32-wasi reactors), AssemblyScript ones with the asc devDependency.
set -euo pipefail
cd "$(dirname "$0")/../.."

# up_to_date OUT SRC...: true when OUT exists and is newer than every SRC.
up_to_date() {
  local out="$1"; shift
  [ -e "$out" ] || return 1
  for src in "$@"; do [ "$out" -nt "$src" ] || return 1; done
}

# Every C function includes the ABI header from functions/include/thaw.h.
abi_inc="functions/include"

# clang runs wasm-opt after linking whenever one is on PATH, and `npm run`/`npm test` put
# node_modules/.bin (binaryen's wasm-opt, via assemblyscript) there: the same build would then
# differ with how it was started. Build C without it, so modules are the same either way.
clang_path="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v 'node_modules/.bin' | paste -sd: -)"
clang() { PATH="$clang_path" command clang "$@"; }

build_c() { # build_c DIR NAME: DIR/NAME.c -> DIR/build/NAME.wasm
  local dir="functions/$1" out="functions/$1/build/$2.wasm"
  up_to_date "$out" "$dir"/*.c "$abi_inc"/*.h && return 0
  echo "setup: building $out"
  mkdir -p "$dir/build"
  clang --target=wasm32-wasi -O2 -mexec-model=reactor -I "$abi_inc" -o "$out" "$dir/$2.c"
}

build_suite_c() { # build_suite_c NAME: functions/suite/NAME/NAME.c (+ suite/include/*.h) -> .../build/NAME.wasm
  local dir="functions/suite/$1" inc="functions/suite/include" out="functions/suite/$1/build/$1.wasm"
  up_to_date "$out" "$dir"/*.c "$inc"/*.h "$abi_inc"/*.h && return 0
  echo "setup: building $out"
  mkdir -p "$dir/build"
  # -msimd128: the inner loops (matmul rows, convolution rows) vectorise; the host's decoder knows SIMD.
  clang --target=wasm32-wasi -O3 -msimd128 -mexec-model=reactor -I "$inc" -I "$abi_inc" -o "$out" "$dir/$1.c" -lm
}

build_cmd() { # build_cmd DIR NAME: DIR/NAME.c -> DIR/build/NAME.wasm, a WASI command (exports _start)
  local dir="functions/$1" out="functions/$1/build/$2.wasm"
  up_to_date "$out" "$dir"/*.c && return 0
  echo "setup: building $out"
  mkdir -p "$dir/build"
  clang --target=wasm32-wasi -O2 -o "$out" "$dir/$2.c"
}

build_as() { # build_as DIR NAME: DIR/assembly/index.ts -> DIR/build/NAME.wasm
  local dir="functions/$1" out="functions/$1/build/$2.wasm"
  up_to_date "$out" "$dir"/assembly/*.ts && return 0
  echo "setup: building $out"
  mkdir -p "$dir/build"
  # The stub runtime and our own abort keep the module's imports inside the Thaw ABI (thaw.*).
  node_modules/.bin/asc "$dir/assembly/index.ts" --runtime stub --use "abort=$dir/assembly/index/thawAbort" -O3 -o "$out"
}

build_c hello-c hello
build_c mem64-c mem64
build_c memlog-c memlog
build_c faulty-c faulty
build_c scaling-c scaling
build_as hello-as hello
build_cmd cmd-c cmd
build_cmd wizer-c wizer
for fn in mmap matmul pagerank recognition video; do build_suite_c "$fn"; done
# packages-py's local Pyodide package directory (two pure-Python wheels and their lock file).
up_to_date functions/packages-py/build/pyodide-packages/pyodide-lock.json functions/packages-py/make-pyodide-dir.py functions/bundle-py/make-wheel.py node_modules/pyodide/pyodide-lock.json \
  || { echo "setup: building functions/packages-py/build/pyodide-packages"; python3 functions/packages-py/make-pyodide-dir.py >/dev/null; }
