#!/usr/bin/env bash
# Stops what deploy/local/start.sh started. DYNAMO_LOCAL_CLEAN=1 also removes the data.
set -uo pipefail
dir=${DYNAMO_LOCAL_DIR:-/tmp/dynamo-local}
for p in nats etcd; do
  [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null && rm -f "$dir/$p.pid"
done
[ "${DYNAMO_LOCAL_CLEAN:-0}" = 1 ] && rm -rf "$dir"
exit 0
