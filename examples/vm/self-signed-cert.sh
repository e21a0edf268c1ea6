#!/usr/bin/env bash
# A self-signed TLS certificate for a first test of the hub (browsers will warn; use Let's Encrypt for real).
#   usage: self-signed-cert.sh HOSTNAME_OR_IP [DIR]     (DIR default /etc/hubkit/tls)
# Writes DIR/key.pem (0600) and DIR/cert.pem, valid 365 days, with the name as subjectAltName (browsers ignore CN).
set -euo pipefail
NAME="${1:?usage: self-signed-cert.sh HOSTNAME_OR_IP [DIR]}"
DIR="${2:-/etc/hubkit/tls}"
case "$NAME" in
  *[!A-Za-z0-9.:-]*) echo "self-signed-cert.sh: not a host name or IP: $NAME" >&2; exit 2 ;;
esac
if [[ "$NAME" =~ ^[0-9.]+$ || "$NAME" == *:* ]]; then SAN="IP:$NAME"; else SAN="DNS:$NAME"; fi
install -d -m 0755 "$DIR"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$NAME" -addext "subjectAltName=$SAN" \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
chmod 0644 "$DIR/cert.pem"
echo "wrote $DIR/cert.pem and $DIR/key.pem for $NAME"
