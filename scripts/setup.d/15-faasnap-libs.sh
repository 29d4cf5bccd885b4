#!/usr/bin/env bash
# Vendors Debian's pure-Python pyaes and chameleon (15-faasnap-libs.apt) into the suite functions'
# bundles, functions/suite/<fn>/build/vendor/<package>, which their manifests name in `requirements`:
# the same library versions FaaSnap's functions import, copied without compiled caches or tests.
set -euo pipefail
cd "$(dirname "$0")/../.."

vendor() { # vendor FN DEBIAN_PACKAGE MODULE VERSION
  local fn="$1" deb="$2" mod="$3" want="$4"
  local src="/usr/lib/python3/dist-packages/$mod" out="functions/suite/$fn/build/vendor/$mod"
  local have
  have="$(dpkg-query -W -f='${Version}' "$deb" 2>/dev/null || true)"
  if [ ! -d "$src" ] || [ "${have%%-*}" != "$want" ]; then
    echo "setup: $deb $want is needed for the suite's $fn (found '${have:-none}'): apt-get install $deb" >&2
    exit 1
  fi
  [ -e "$out/.debian-version" ] && [ "$(cat "$out/.debian-version")" = "$have" ] && return 0
  echo "setup: vendoring $deb $have into $out"
  rm -rf "$out"
  mkdir -p "$(dirname "$out")"
  cp -r "$src" "$out"
  find "$out" -name __pycache__ -type d -prune -exec rm -rf {} +
  rm -rf "$out/tests"
  printf '%s' "$have" > "$out/.debian-version"
}

vendor pyaes python3-pyaes pyaes 1.6.1
vendor chameleon python3-chameleon chameleon 3.8.1
