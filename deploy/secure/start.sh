#!/usr/bin/env bash
# Starts a secured NATS and etcd from installed binaries (Debian: apt-get install -y nats-server
# etcd-server etcd-client openssl) for a local or single-node trial: prepare.sh makes the
# certificates, passwords, nats.conf and env files, then nats-server and etcd (TLS with
# --client-cert-auth) start and etcd-auth.sh turns etcd authentication on. Stop with stop.sh.
# Same variables as prepare.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/prepare.sh"
dir=${DYNAMO_SECURE_DIR:-/tmp/dynamo-secure}
host=${DYNAMO_SECURE_HOST:-127.0.0.1}
etcd_port=${ETCD_PORT:-2379}
nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$nats_bin" ] || { echo "nats-server not found (apt-get install -y nats-server)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "etcd not found (apt-get install -y etcd-server)" >&2; exit 1; }
cd "$dir"
"$nats_bin" -c nats.conf >nats.log 2>&1 &
echo $! >nats.pid
etcd --name secure --data-dir "$dir/etcd" \
  --listen-client-urls "https://$host:$etcd_port" --advertise-client-urls "https://$host:$etcd_port" \
  --cert-file certs/server.crt --key-file certs/server.key --trusted-ca-file certs/ca.crt --client-cert-auth \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-cluster "secure=http://127.0.0.1:$((etcd_port + 1))" >etcd.log 2>&1 &
echo $! >etcd.pid
ETCD_URL="https://$host:$etcd_port" "$here/etcd-auth.sh"
echo "secured NATS on tls://$host:${NATS_PORT:-4222}, etcd on https://$host:$etcd_port"
echo "per-process settings (load one with: set -a; . FILE; set +a):"
ls "$dir"/env/*.env
