#!/usr/bin/env bash
# Base system packages every part of the suite uses. Idempotent; quick when already installed.
set -euo pipefail
need=()
for pkg in chromium postgresql docker.io debootstrap nginx wrk supervisor openssl procps psmisc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
