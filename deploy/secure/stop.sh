#!/usr/bin/env bash
# Stops what deploy/secure/start.sh started. DYNAMO_SECURE_CLEAN=1 also removes certificates,
# passwords and data.
set -uo pipefail
dir=${DYNAMO_SECURE_DIR:-/tmp/dynamo-secure}
for p in nats etcd; do
  [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null && rm -f "$dir/$p.pid"
done
[ "${DYNAMO_SECURE_CLEAN:-0}" = 1 ] && rm -rf "$dir"
exit 0
