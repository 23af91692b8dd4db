#!/usr/bin/env sh
# Turns etcd authentication on (once): user root, and user dynamo with read-write on the keys
# under dynamo/ only. Passwords come from $DYNAMO_SECURE_DIR (made by prepare.sh); etcdctl
# reaches $ETCD_URL with the client certificate. Also run by docker-compose.secure.yml.
set -eu
dir=${DYNAMO_SECURE_DIR:-/tmp/dynamo-secure}
url=${ETCD_URL:-https://127.0.0.1:2379}
export ETCDCTL_API=3
ctl() { etcdctl --endpoints "$url" --cacert "$dir/certs/ca.crt" --cert "$dir/certs/client.crt" --key "$dir/certs/client.key" "$@" >/dev/null; }
i=0
until ctl endpoint health 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -lt 50 ] || { echo "etcd at $url did not answer" >&2; exit 1; }
  sleep 0.2
done
[ -f "$dir/etcd-auth.done" ] && exit 0
ctl user add "root:$(cat "$dir/etcd-root.pw")"
ctl role add root
ctl user grant-role root root
ctl user add "dynamo:$(cat "$dir/etcd-dynamo.pw")"
ctl role add dynamo
ctl role grant-permission dynamo --prefix=true readwrite dynamo/
ctl user grant-role dynamo dynamo
ctl auth enable
touch "$dir/etcd-auth.done"
