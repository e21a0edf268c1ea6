#!/usr/bin/env bash
# Docker engine + the local single-user test image for hubkit-spawn-docker and tests/docker.
#
# No image registry is reachable, so the image is built from Debian packages (debootstrap) and wheels built on
# this machine, then `docker import`ed. Every stage is cached under $REPO/.cache/docker/ keyed by a hash of its
# inputs, so a rerun with nothing changed takes a second or two. Idempotent; run as root.
#
# Result: image hubkit-test-singleuser:<hash> (also tagged :latest); the tag is written to
# $REPO/.cache/docker/image-tag for the tests. The image has /opt/venv (jupyter-server, jupyterlab when cheap,
# jupyterhub==6.1.1 for the stock `jupyterhub-singleuser`, and hubkit-singleuser when the package exists),
# a user `jovyan` (uid 1000, home /home/jovyan) and runs as that user.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$REPO/.cache/docker"
LOG="$CACHE/setup.log"
PY="${HUBKIT_SETUP_PYTHON:-$REPO/../venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
IMAGE_REPO="hubkit-test-singleuser"
SUITE="bookworm"
MIRROR="http://deb.debian.org/debian"
DEB_INCLUDE="python3,python3-venv,ca-certificates,tini"
PIP_REQS="jupyter-server>=2.10 jupyterlab>=4 jupyterhub==6.1.1"
mkdir -p "$CACHE"

log() { echo "docker setup: $*" >&2; }

# ---- 1. packages ---------------------------------------------------------------------------------------------
need=()
for pkg in docker.io debootstrap; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---- 2. dockerd ------------------------------------------------------------------------------------------------
if ! timeout 10 docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $CACHE/dockerd.log)"
  # setsid: the daemon must outlive this script and not share its process group.
  setsid dockerd >"$CACHE/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 10 docker info >/dev/null 2>&1 || { log "dockerd did not come up; see $CACHE/dockerd.log"; tail -20 "$CACHE/dockerd.log" >&2; exit 1; }
fi

# ---- 3. input hashes -------------------------------------------------------------------------------------------
SU_DIR="$REPO/packages/hubkit-singleuser"
su_hash="none"
if [ -f "$SU_DIR/pyproject.toml" ]; then
  su_hash="$(cd "$SU_DIR" && find . -type f \( -path './src/*' -o -name pyproject.toml \) -not -path '*/__pycache__/*' -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
fi
base_key="$(printf '%s|%s|%s|v1' "$SUITE" "$MIRROR" "$DEB_INCLUDE" | sha256sum | cut -c1-16)"
# Bump RECIPE when the image recipe below changes in a way the other inputs do not capture.
RECIPE=2
image_key="$(printf '%s|%s|%s|%s' "$base_key" "$PIP_REQS" "$su_hash" "$RECIPE" | sha256sum | cut -c1-12)"
TAG="$IMAGE_REPO:$image_key"

if docker image inspect "$TAG" >/dev/null 2>&1; then
  docker tag "$TAG" "$IMAGE_REPO:latest"
  echo "$TAG" >"$CACHE/image-tag"
  exit 0
fi
log "building $TAG (first time takes a few minutes; log: $LOG)"
: >"$LOG"

WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
cleanup() {
  # A chroot may hold mounts; never leave them behind.
  for m in proc dev/pts; do mountpoint -q "$WORK/rootfs/$m" 2>/dev/null && umount -l "$WORK/rootfs/$m" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- 4. base root filesystem (debootstrap, cached as a tarball) ------------------------------------------------
BASE_TAR="$CACHE/base-$base_key.tar"
if [ ! -s "$BASE_TAR" ]; then
  log "debootstrap $SUITE (about 80 s)"
  timeout 600 debootstrap --variant=minbase --include="$DEB_INCLUDE" "$SUITE" "$WORK/base" "$MIRROR" >>"$LOG" 2>&1 \
    || { log "debootstrap failed; tail of $LOG:"; tail -20 "$LOG" >&2; exit 1; }
  rm -rf "$WORK/base/var/cache/apt/archives/"*.deb "$WORK/base/var/lib/apt/lists/"*
  tar -C "$WORK/base" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$WORK/base"
fi

# ---- 5. wheels (built on this machine: same Debian release and Python 3.11 as the image) ------------------------
WHEELS="$WORK/rootfs-wheels"
mkdir -p "$WHEELS"
reqs=($PIP_REQS)
if [ "$su_hash" != "none" ]; then
  timeout 300 "$PY" -m pip wheel -q --no-deps -w "$WHEELS" "$SU_DIR" >>"$LOG" 2>&1 \
    || { log "building the hubkit-singleuser wheel failed; tail of $LOG:"; tail -20 "$LOG" >&2; exit 1; }
  # Its dependencies (minus other hubkit distributions, which would need their own local wheels).
  while IFS= read -r req; do reqs+=("$req"); done < <("$PY" - "$WHEELS" <<'EOF'
import sys, zipfile, pathlib
from email.parser import Parser
for whl in pathlib.Path(sys.argv[1]).glob("hubkit_singleuser-*.whl"):
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(z.read(meta).decode())
    for req in msg.get_all("Requires-Dist") or []:
        if "extra ==" in req or req.lower().startswith("hubkit"):
            continue
        print(req.split(";")[0].strip())
EOF
)
fi
# Resolve for the image's Python (bookworm ships 3.11.2), not this machine's: binary wheels only.
DEB_PY="$(printf '%s' "${HUBKIT_IMAGE_PYTHON:-3.11.2}")"
log "pip download (python $DEB_PY) ${reqs[*]}"
timeout 900 "$PY" -m pip download -q --only-binary=:all: --python-version "$DEB_PY" -d "$WHEELS" "${reqs[@]}" >>"$LOG" 2>&1 \
  || { log "pip download failed; tail of $LOG:"; tail -20 "$LOG" >&2; exit 1; }

# ---- 6. image root filesystem: base + venv -----------------------------------------------------------------------
ROOT="$WORK/rootfs"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE_TAR"
mv "$WHEELS" "$ROOT/wheels"
install_list=("${reqs[@]}")
if [ "$su_hash" != "none" ]; then
  su_whl="$(cd "$ROOT/wheels" && ls hubkit_singleuser-*.whl | head -1)"
  install_list+=("/wheels/$su_whl")
fi
# env -i: this machine's PIP_* settings (local index paths) mean nothing inside the chroot.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$ROOT" /bin/sh -c "python3 -m venv /opt/venv && \
  /opt/venv/bin/pip install -q --no-index --find-links /wheels $(printf "'%s' " "${install_list[@]}") && \
  rm -rf /root/.cache" >>"$LOG" 2>&1 \
  || { log "venv install in the chroot failed; tail of $LOG:"; tail -20 "$LOG" >&2; exit 1; }
rm -rf "$ROOT/wheels"
chroot "$ROOT" /bin/sh -c "groupadd -g 1000 jovyan && useradd -m -u 1000 -g 1000 -s /bin/bash jovyan" >>"$LOG" 2>&1
# Smoke test inside the chroot: the stock single-user entry point imports.
chroot "$ROOT" /opt/venv/bin/python -c "import jupyter_server, jupyterhub.singleuser" >>"$LOG" 2>&1 \
  || { log "smoke import failed; tail of $LOG:"; tail -20 "$LOG" >&2; exit 1; }

cmd='["jupyterhub-singleuser"]'
[ "$su_hash" != "none" ] && [ -x "$ROOT/opt/venv/bin/hubkit-singleuser" ] && cmd='["hubkit-singleuser"]'
tar -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV HOME=/home/jovyan' \
  -c 'ENV SHELL=/bin/bash' \
  -c 'USER 1000:1000' \
  -c 'WORKDIR /home/jovyan' \
  -c 'ENTRYPOINT ["/usr/bin/tini", "-g", "--"]' \
  -c "CMD $cmd" \
  -c 'LABEL org.hubkit.test-image=1' \
  - "$TAG" >>"$LOG"
docker tag "$TAG" "$IMAGE_REPO:latest"
echo "$TAG" >"$CACHE/image-tag"
# Drop older test images so the disk does not fill up over many input changes.
docker images "$IMAGE_REPO" --format '{{.Repository}}:{{.Tag}}' | grep -v -e ":latest$" -e ":$image_key$" \
  | xargs -r docker rmi >/dev/null 2>&1 || true
log "built $TAG"
