#!/usr/bin/env bash
# Create the class-material folder every user sees as ~/shared, read-only.
#   SHARED_DIR (default /srv/hubkit/shared): owned by root, 0755 dirs / 0644 files: users read, only root writes
#   SKEL_DIR   (default /etc/skel): gets a "shared" link, so every home made by useradd -m (by hand or by the
#              hub's create_system_users) has it from the start. Existing homes get it from the local spawner
#              ([spawner.local] shared_data_dir) on their first server start.
# Idempotent. Put material in with:  sudo cp -r lecture1/ /srv/hubkit/shared/ && sudo ./shared-data.sh
set -euo pipefail
SHARED_DIR="${SHARED_DIR:-/srv/hubkit/shared}"
SKEL_DIR="${SKEL_DIR:-/etc/skel}"
LINK_NAME="${LINK_NAME:-shared}"
install -d -o root -g root -m 0755 "$SHARED_DIR"
chown -R root:root "$SHARED_DIR"
chmod -R u=rwX,go=rX "$SHARED_DIR"     # directories 0755, files 0644 (0755 when executable)
install -d -m 0755 "$SKEL_DIR"
if [ -L "$SKEL_DIR/$LINK_NAME" ] || [ ! -e "$SKEL_DIR/$LINK_NAME" ]; then
  ln -sfn "$SHARED_DIR" "$SKEL_DIR/$LINK_NAME"
else
  echo "shared-data.sh: $SKEL_DIR/$LINK_NAME exists and is not a link; left alone" >&2
  exit 1
fi
echo "shared data: $SHARED_DIR (read-only for users), linked from $SKEL_DIR/$LINK_NAME"
