#!/usr/bin/env bash
# Builds the native addon (native/build/Release/thaw_native.node) with node-gyp when any of its
# sources is newer than the built addon. Offline: uses the headers of the Node that runs us.
set -euo pipefail
cd "$(dirname "$0")/../../native"

out=build/Release/thaw_native.node
if [ -f "$out" ] && [ -z "$(find . -maxdepth 1 \( -name '*.c' -o -name '*.h' -o -name binding.gyp \) -newer "$out")" ]; then
  exit 0
fi

# node-gyp: the one npm runs scripts with, else the copy bundled with npm, else npx.
gyp=(npx --no-install node-gyp)
npm_gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
if [ -n "${npm_config_node_gyp:-}" ] && [ -f "$npm_config_node_gyp" ]; then gyp=(node "$npm_config_node_gyp");
elif [ -f "$npm_gyp" ]; then gyp=(node "$npm_gyp"); fi

# Headers of this Node (e.g. /usr/include/node), so node-gyp downloads nothing.
prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
nodedir=()
[ -f "$prefix/include/node/node_api.h" ] && nodedir=(--nodedir="$prefix")

echo "setup: building native addon"
"${gyp[@]}" rebuild "${nodedir[@]}" --loglevel=warn
