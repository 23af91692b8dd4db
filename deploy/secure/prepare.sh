#!/usr/bin/env bash
# Prepares a secured control plane in $DYNAMO_SECURE_DIR (default /tmp/dynamo-secure, mode 700):
# a throwaway CA and certificates (openssl), random passwords, nats.conf (mutual TLS, a password
# per process, the least-privilege permissions of docs/security.md, JetStream) and one env file
# per dynamo-ts process in env/. Used by start.sh (local binaries) and docker-compose.secure.yml.
# Needs a build (npx tsc -b) for the permissions generator.
#   DYNAMO_NAMESPACE (dynamo-demo), DYNAMO_SECURE_HOST (127.0.0.1: the address clients use and
#   the certificate names), DYNAMO_SECURE_LISTEN (NATS listen address, default the host), NATS_PORT (4222),
#   NATS_MONITOR_PORT (8222, on 127.0.0.1), ETCD_PORT (2379; peer port +1),
#   DYNAMO_WORKERS ("node1 node2": decode workers), DYNAMO_PREFILL ("prefill1").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${DYNAMO_SECURE_DIR:-/tmp/dynamo-secure}
host=${DYNAMO_SECURE_HOST:-127.0.0.1}
ns=${DYNAMO_NAMESPACE:-dynamo-demo}
nats_port=${NATS_PORT:-4222}
etcd_port=${ETCD_PORT:-2379}
workers=${DYNAMO_WORKERS:-node1 node2}
prefills=${DYNAMO_PREFILL:-prefill1}
listen=${DYNAMO_SECURE_LISTEN:-$host}
for b in openssl node; do command -v "$b" >/dev/null || { echo "$b not found" >&2; exit 1; }; done

umask 077
mkdir -p "$dir/certs" "$dir/env"
cd "$dir/certs"
if [ ! -f ca.crt ]; then
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 30 -subj /CN=dynamo-ca 2>/dev/null
  case $host in
    *[!0-9.]*) san="DNS:$host" ;;
    *) san="IP:$host" ;;
  esac
  printf 'subjectAltName=%s,IP:127.0.0.1,DNS:localhost,DNS:nats,DNS:etcd\nextendedKeyUsage=serverAuth\n' "$san" >server.ext
  openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=dynamo-server 2>/dev/null
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext -out server.crt 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl req "${ec[@]}" -keyout client.key -out client.csr -subj /CN=dynamo-client 2>/dev/null
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out client.crt 2>/dev/null
fi
cd "$dir"
pw() { openssl rand -hex 16; }
[ -f etcd-root.pw ] || pw >etcd-root.pw

# One NATS user per process; the env file of each holds its credentials.
user_args=()
common_env() {
  cat <<ENV
NATS_SERVER=tls://$host:$nats_port
ETCD_ENDPOINTS=https://$host:$etcd_port
DYNAMO_NAMESPACE=$ns
NATS_TLS_CA_CERT_PATH=$dir/certs/ca.crt
NATS_TLS_CLIENT_CERT_PATH=$dir/certs/client.crt
NATS_TLS_CLIENT_KEY_PATH=$dir/certs/client.key
ETCD_AUTH_CA=$dir/certs/ca.crt
ETCD_AUTH_CLIENT_CERT=$dir/certs/client.crt
ETCD_AUTH_CLIENT_KEY=$dir/certs/client.key
ETCD_AUTH_USERNAME=dynamo
ENV
}
[ -f etcd-dynamo.pw ] || pw >etcd-dynamo.pw
cp "$here/etcd-auth.sh" etcd-auth.sh
etcd_pw=$(cat etcd-dynamo.pw)
add_user() { # name role [scope]
  local p
  p=$(pw)
  user_args+=(--user "$1:$p:$2${3:+:$3}")
  {
    common_env
    echo "ETCD_AUTH_PASSWORD=$etcd_pw"
    echo "NATS_AUTH_USERNAME=$1"
    echo "NATS_AUTH_PASSWORD=$p"
    echo "DYNAMO_NATS_INBOX_PREFIX=_INBOX_$1"
    [ -n "${3:-}" ] && echo "DYNAMO_SUBJECT_SCOPE=$3"
    [ "$2" = worker ] || [ "$2" = prefill ] && echo "DYNAMO_WORKER_NAME=$1"
    true
  } >"env/$1.env"
}
add_user frontend frontend
for w in $workers; do add_user "$w" worker "$w"; done
for p in $prefills; do add_user "$p" prefill "$p"; done

{
  echo "listen: $listen:$nats_port"
  echo "http: 127.0.0.1:${NATS_MONITOR_PORT:-8222}"
  echo "jetstream { store_dir: \"$dir/nats\" }"
  echo "tls { cert_file: \"$dir/certs/server.crt\", key_file: \"$dir/certs/server.key\", ca_file: \"$dir/certs/ca.crt\", verify: true, timeout: 2 }"
  node "$here/nats-authorization.js" --namespace "$ns" "${user_args[@]}"
} >nats.conf
echo "prepared $dir (env files: $dir/env/*.env)"
