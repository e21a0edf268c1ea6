#!/usr/bin/env bash
# System packages for hubkit-auth-pam and the single-VM example (tests/vm). Idempotent; quick when installed.
#   passwd/login: useradd, chpasswd, chage, usermod (test fixtures create real accounts)
#   libpam-modules(-bin): pam_unix, pam_exec (session tests), unix_chkpwd; pamtester: diagnosing PAM stacks
#   nginx + openssl: the TLS front of examples/vm; supervisor: the program file; systemd: systemd-analyze verify
#   chromium: the browser tests (Playwright drives /usr/bin/chromium)
set -euo pipefail
need=()
for pkg in passwd login libpam-modules libpam-modules-bin libpam0g pamtester nginx openssl supervisor systemd \
  chromium util-linux procps; do
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

# A Python that other accounts can run. The dev venv's interpreter lives under /root (0700), so servers started
# as a user (run_as_user) could not execute it. This venv uses Debian's python3 (same 3.11 ABI) and sees the dev
# venv's packages through a .pth file, like /opt/hubkit/venv on a real VM (README) but without downloading.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${HUBKIT_SETUP_PYTHON:-$REPO/../venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
UV="$REPO/.cache/vm/venv"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ ! -x "$UV/bin/python" ] || [ "$(cat "$UV/site.pth-source" 2>/dev/null)" != "$SITE" ]; then
  dpkg -s python3-venv >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  rm -rf "$UV"
  /usr/bin/python3 -m venv --without-pip "$UV"
  USITE="$("$UV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # an "import" line: addsitedir also processes the .pth files there (editable installs)
  echo "import site; site.addsitedir('$SITE')" > "$USITE/hubkit-dev-venv.pth"
  # console scripts for the servers, bound to this interpreter
  for spec in "hubkit-singleuser=hubkit_singleuser.launcher:main" "jupyter-lab=jupyterlab.labapp:main" \
    "jupyter=jupyter_core.command:main"; do
    name="${spec%%=*}"; target="${spec#*=}"; mod="${target%%:*}"; fn="${target#*:}"
    printf '#!%s\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' "$UV/bin/python" "$mod" "$fn" "$fn" > "$UV/bin/$name"
    chmod 0755 "$UV/bin/$name"
  done
  echo "$SITE" > "$UV/site.pth-source"
  chmod -R go+rX "$REPO/.cache/vm"
fi
"$UV/bin/python" -c 'import hubkit_singleuser, jupyterlab, ipykernel' 
