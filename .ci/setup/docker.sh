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
# A Python with pip, for building/downloading wheels (the image's own Python is Debian's).
PY=""
for cand in "${HUBKIT_SETUP_PYTHON:-}" "$REPO/.venv-test/bin/python" "$REPO/../venv/bin/python" "$(command -v python3 || true)"; do
  if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -m pip --version >/dev/null 2>&1; then PY="$cand"; break; fi
done
[ -n "$PY" ] || { echo "docker setup: no Python with pip found (set HUBKIT_SETUP_PYTHON)" >&2; exit 1; }
IMAGE_REPO="hubkit-test-singleuser"
SUITE="bookworm"
MIRROR="http://deb.debian.org/debian"
DEB_INCLUDE="python3,python3-venv,ca-certificates,tini"
PIP_REQS="jupyter-server>=2.10 jupyterlab>=4 jupyterhub==6.1.1"
mkdir -p "$CACHE"

log() { echo "docker setup: $*" >&2; }

# ---- 1. packages ---------------------------------------------------------------------------------------------
need=()
for pkg in docker.io debootstrap docker-compose; do
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
# Two image layers, each keyed by its own inputs: a Jupyter base (Debian + venv with PIP_REQS, slow to build,
# rarely changes) and the hubkit-singleuser layer on top (seconds to rebuild when that package changes).
SU_DIR="$REPO/packages/hubkit-singleuser"
su_hash="none"
if [ -f "$SU_DIR/pyproject.toml" ]; then
  su_hash="$(cd "$SU_DIR" && find . -type f \( -path './src/*' -o -name pyproject.toml \) -not -path '*/__pycache__/*' -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
fi
base_key="$(printf '%s|%s|%s|v1' "$SUITE" "$MIRROR" "$DEB_INCLUDE" | sha256sum | cut -c1-16)"
# Bump RECIPE when the image recipe below changes in a way the other inputs do not capture.
RECIPE=3
jupyter_key="$(printf '%s|%s|%s' "$base_key" "$PIP_REQS" "$RECIPE" | sha256sum | cut -c1-12)"
image_key="$(printf '%s|%s|%s' "$jupyter_key" "$su_hash" "$RECIPE" | sha256sum | cut -c1-12)"
JUPYTER_TAG="hubkit-test-jupyter:$jupyter_key"
TAG="$IMAGE_REPO:$image_key"

finish() {
  docker tag "$TAG" "$IMAGE_REPO:latest"
  echo "$TAG" >"$CACHE/image-tag"
  # Drop older test images so the disk does not fill up over many input changes (in-use ones stay).
  { docker images "$IMAGE_REPO" --format '{{.Repository}}:{{.Tag}}' | grep -v -e ":latest$" -e ":$image_key$"
    docker images hubkit-test-jupyter --format '{{.Repository}}:{{.Tag}}' | grep -v ":$jupyter_key$"
  } | xargs -r docker rmi >/dev/null 2>&1 || true
}
if docker image inspect "$TAG" >/dev/null 2>&1; then
  finish
  exit 0
fi
log "building $TAG (log: $LOG)"
: >"$LOG"

WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
BUILD_CT="hubkit-test-image-build-$$"
cleanup() {
  docker rm -f "$BUILD_CT" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { log "$1; tail of $LOG:"; tail -20 "$LOG" >&2; exit 1; }

# Resolve for the image's Python (bookworm ships 3.11.2), not this machine's: binary wheels only.
DEB_PY="${HUBKIT_IMAGE_PYTHON:-3.11.2}"
download() {  # download DIR REQ...
  local dir="$1"; shift
  timeout 900 "$PY" -m pip download -q --only-binary=:all: --python-version "$DEB_PY" -d "$dir" "$@" >>"$LOG" 2>&1
}

# ---- 4. the Jupyter base image (debootstrap rootfs cached as a tarball, then a venv) ------------------------------
if ! docker image inspect "$JUPYTER_TAG" >/dev/null 2>&1; then
  BASE_TAR="$CACHE/base-$base_key.tar"
  if [ ! -s "$BASE_TAR" ]; then
    log "debootstrap $SUITE (about 80 s)"
    timeout 600 debootstrap --variant=minbase --include="$DEB_INCLUDE" "$SUITE" "$WORK/base" "$MIRROR" >>"$LOG" 2>&1 \
      || fail "debootstrap failed"
    rm -rf "$WORK/base/var/cache/apt/archives/"*.deb "$WORK/base/var/lib/apt/lists/"*
    tar -C "$WORK/base" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf "$WORK/base"
  fi
  ROOT="$WORK/rootfs"
  mkdir -p "$ROOT"
  tar -C "$ROOT" -xf "$BASE_TAR"
  log "pip download (python $DEB_PY) $PIP_REQS"
  # shellcheck disable=SC2086  # PIP_REQS is a list of requirement words
  download "$ROOT/wheels" $PIP_REQS || fail "pip download failed"
  # env -i: this machine's PIP_* settings (local index paths) mean nothing inside the chroot.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$ROOT" /bin/sh -c \
    "python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-index --find-links /wheels $(printf "'%s' " $PIP_REQS) \
     && rm -rf /root/.cache /wheels && groupadd -g 1000 jovyan && useradd -m -u 1000 -g 1000 -s /bin/bash jovyan \
     && /opt/venv/bin/python -c 'import jupyter_server, jupyterhub.singleuser'" >>"$LOG" 2>&1 \
    || fail "venv install in the chroot failed"
  tar -C "$ROOT" -c . | docker import \
    -c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV HOME=/home/jovyan' \
    -c 'ENV SHELL=/bin/bash' \
    -c 'USER 1000:1000' \
    -c 'WORKDIR /home/jovyan' \
    -c 'ENTRYPOINT ["/usr/bin/tini", "-g", "--"]' \
    -c 'CMD ["jupyterhub-singleuser"]' \
    -c 'LABEL org.hubkit.test-image=1' \
    - "$JUPYTER_TAG" >>"$LOG" || fail "docker import failed"
  rm -rf "$ROOT"
fi

# ---- 5. the hubkit-singleuser layer -------------------------------------------------------------------------------
if [ "$su_hash" = "none" ]; then
  docker tag "$JUPYTER_TAG" "$TAG"
  finish
  log "built $TAG (without hubkit-singleuser: packages/hubkit-singleuser does not exist yet)"
  exit 0
fi
W="$WORK/wheels"
mkdir -p "$W"
timeout 300 "$PY" -m pip wheel -q --no-deps -w "$W" "$SU_DIR" >>"$LOG" 2>&1 || fail "building the hubkit-singleuser wheel failed"
su_whl="$(cd "$W" && ls hubkit_singleuser-*.whl | head -1)"
# Its dependencies (minus other hubkit distributions), for the image's Python; most are already in the base.
mapfile -t su_deps < <("$PY" - "$W/$su_whl" <<'PYEOF'
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    msg = Parser().parsestr(z.read(meta).decode())
for req in msg.get_all("Requires-Dist") or []:
    if "extra ==" not in req and not req.lower().startswith("hubkit"):
        print(req.split(";")[0].strip())
PYEOF
)
if [ ${#su_deps[@]} -gt 0 ]; then
  download "$W" "${su_deps[@]}" || fail "pip download of hubkit-singleuser's dependencies failed"
fi
docker run --name "$BUILD_CT" --user 0 --network none --entrypoint /opt/venv/bin/pip -v "$W:/wheels:ro" "$JUPYTER_TAG" \
  install -q --no-index --find-links /wheels "/wheels/$su_whl" >>"$LOG" 2>&1 || fail "installing hubkit-singleuser failed"
docker commit \
  -c 'USER 1000:1000' \
  -c 'WORKDIR /home/jovyan' \
  -c 'ENTRYPOINT ["/usr/bin/tini", "-g", "--"]' \
  -c 'CMD ["hubkit-singleuser"]' \
  "$BUILD_CT" "$TAG" >>"$LOG" || fail "docker commit failed"
docker run --rm --network none --entrypoint /opt/venv/bin/python "$TAG" -c "import hubkit_singleuser" >>"$LOG" 2>&1 \
  || { docker rmi "$TAG" >/dev/null 2>&1; fail "smoke import of hubkit_singleuser failed"; }
finish
log "built $TAG"
