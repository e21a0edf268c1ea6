#!/usr/bin/env bash
# A self-signed TLS certificate for a first test of the hub (browsers will warn; use Let's Encrypt for real).
#   usage: self-signed-cert.sh [--wildcard] HOSTNAME_OR_IP [DIR]     (DIR default /etc/hubkit/tls)
# Writes DIR/key.pem (0600) and DIR/cert.pem, valid 365 days, with the name as subjectAltName (browsers ignore CN).
# --wildcard also covers *.HOSTNAME: per-user subdomains (nginx-hubkit-subdomains.conf).
set -euo pipefail
WILDCARD=0
if [[ "${1:-}" == "--wildcard" ]]; then WILDCARD=1; shift; fi
NAME="${1:?usage: self-signed-cert.sh [--wildcard] HOSTNAME_OR_IP [DIR]}"
DIR="${2:-/etc/hubkit/tls}"
case "$NAME" in
  *[!A-Za-z0-9.:-]*) echo "self-signed-cert.sh: not a host name or IP: $NAME" >&2; exit 2 ;;
esac
if [[ "$NAME" =~ ^[0-9.]+$ || "$NAME" == *:* ]]; then
  if [[ $WILDCARD == 1 ]]; then echo "self-signed-cert.sh: --wildcard needs a host name" >&2; exit 2; fi
  SAN="IP:$NAME"
else
  SAN="DNS:$NAME"
  if [[ $WILDCARD == 1 ]]; then SAN="$SAN,DNS:*.$NAME"; fi
fi
install -d -m 0755 "$DIR"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$NAME" -addext "subjectAltName=$SAN" \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
chmod 0644 "$DIR/cert.pem"
echo "wrote $DIR/cert.pem and $DIR/key.pem for $SAN"
