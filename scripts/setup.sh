#!/usr/bin/env bash
# One-step set-up for a fresh Debian 12 + Node 20 machine: Debian packages, npm packages,
# the native addon, the TypeScript build and the example functions. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in "$@"; do need_apt+=("$pkg"); done
# Each part of Thaw lists the Debian packages it needs in scripts/setup.d/*.apt (one per line).
for f in scripts/setup.d/*.apt; do
  [ -e "$f" ] || continue
  while read -r pkg; do
    [ -n "$pkg" ] && [ "${pkg#\#}" = "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
  done < "$f"
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Build steps of each part, in name order (native addon, functions, ...).
for f in scripts/setup.d/*.sh; do
  [ -e "$f" ] || continue
  bash "$f"
done

echo "setup: tsc"
npx tsc -p tsconfig.json
