#!/usr/bin/env bash
# System packages for hubkit-auth-pam and the single-VM example (tests/vm). Idempotent; quick when installed.
#   passwd/login: useradd, chpasswd, chage, usermod (test fixtures create real accounts)
#   libpam-modules(-bin): pam_unix, pam_exec (session tests), unix_chkpwd; pamtester: diagnosing PAM stacks
#   nginx + openssl: the TLS front of examples/vm; supervisor: the program file; systemd: systemd-analyze verify
#   chromium: the browser tests (Playwright drives /usr/bin/chromium)
#   python3(-venv): tests/vm/uservenv.py builds a Python every test account can run when the test venv's is not
set -euo pipefail
need=()
for pkg in passwd login libpam-modules libpam-modules-bin libpam0g pamtester nginx openssl supervisor systemd \
  chromium util-linux procps python3 python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "vm setup: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian packages start their daemons where an init system exists; the tests run their own instances.
command -v systemd-analyze >/dev/null
command -v nginx >/dev/null
command -v supervisord >/dev/null

