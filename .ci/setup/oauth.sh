#!/usr/bin/env bash
# Installs the real OpenID Connect provider (panva's oidc-provider) used by tests/oauth and the
# hubkit-auth-oauth package tests. Idempotent: quick when already installed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREFIX="$REPO/.cache/npm-oidc"
if [ -f "$PREFIX/node_modules/oidc-provider/package.json" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "oauth setup: npm is missing (install nodejs 20)" >&2; exit 1; }
mkdir -p "$PREFIX"
npm install --no-save --no-audit --no-fund --prefix "$PREFIX" oidc-provider@8
