#!/usr/bin/env bash
# configurable-http-proxy from npm: the incumbent the proxy tests check compatibility with (and benchmark).
set -euo pipefail
REPO="${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin="$REPO/.cache/npm/node_modules/.bin/configurable-http-proxy"
if [ ! -x "$bin" ]; then
  mkdir -p "$REPO/.cache/npm"
  npm install --no-save --no-audit --no-fund --prefix "$REPO/.cache/npm" configurable-http-proxy@5 >/dev/null
fi
"$bin" --version
