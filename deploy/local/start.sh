#!/usr/bin/env bash
# Starts nats-server (JetStream) and etcd from installed binaries (Debian: apt-get install -y
# nats-server etcd-server), for people without Docker. Data and logs go to $DYNAMO_LOCAL_DIR
# (default /tmp/dynamo-local). Binds $DYNAMO_LOCAL_HOST (default 127.0.0.1): set it to this
# node's address to let other nodes in.
set -euo pipefail
dir=${DYNAMO_LOCAL_DIR:-/tmp/dynamo-local}
host=${DYNAMO_LOCAL_HOST:-127.0.0.1}
mkdir -p "$dir"
nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$nats_bin" ] || { echo "nats-server not found (apt-get install -y nats-server)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "etcd not found (apt-get install -y etcd-server)" >&2; exit 1; }
# Already running (a second start would die on the taken ports and overwrite the pid files, so
# that stop.sh could no longer stop the first): say so and leave it as it is.
for svc in nats etcd; do
  if [ -f "$dir/$svc.pid" ] && kill -0 "$(cat "$dir/$svc.pid")" 2>/dev/null; then
    echo "$svc is already running (pid $(cat "$dir/$svc.pid"), $dir); stop it first: deploy/local/stop.sh" >&2
    exit 1
  fi
done
"$nats_bin" -a "$host" -p 4222 -m 8222 -js -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
echo $! >"$dir/nats.pid"
etcd --name local --data-dir "$dir/etcd" \
  --listen-client-urls "http://$host:2379" --advertise-client-urls "http://$host:2379" \
  --listen-peer-urls "http://127.0.0.1:2380" --initial-advertise-peer-urls "http://127.0.0.1:2380" \
  --initial-cluster "local=http://127.0.0.1:2380" >"$dir/etcd.log" 2>&1 &
echo $! >"$dir/etcd.pid"
sleep 1
# Both must still be running (a port taken by something else makes one exit at once).
for svc in nats etcd; do
  if ! kill -0 "$(cat "$dir/$svc.pid")" 2>/dev/null; then
    echo "$svc failed to start; last lines of $dir/$svc.log:" >&2
    tail -n 5 "$dir/$svc.log" >&2
    exit 1
  fi
done
echo "export NATS_SERVER=nats://$host:4222 ETCD_ENDPOINTS=http://$host:2379"
