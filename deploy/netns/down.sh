#!/usr/bin/env bash
# Removes what up.sh created for DYNAMO_NETNS (default dyn-demo): stops every process still
# running in those namespaces (SIGTERM, then SIGKILL after 3 s) and deletes the namespaces (their
# veth pairs and the bridge go with them). Idempotent: nothing to remove is not an error.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
need_root_and_ip

mapfile -t spaces < <(existing_ns)
[ ${#spaces[@]} -eq 0 ] && exit 0

pids_in() {
  local ns
  for ns in "${spaces[@]}"; do "$ip_bin" netns pids "$ns" 2>/dev/null; done | sort -u
}

mapfile -t pids < <(pids_in)
if [ ${#pids[@]} -gt 0 ]; then
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 30); do
    mapfile -t pids < <(pids_in)
    [ ${#pids[@]} -eq 0 ] && break
    sleep 0.1
  done
  [ ${#pids[@]} -gt 0 ] && kill -KILL "${pids[@]}" 2>/dev/null || true
fi

rc=0
for ns in "${spaces[@]}"; do
  "$ip_bin" netns del "$ns" 2>/dev/null || { [ -z "$(existing_ns | grep -x "$ns")" ] || { echo "could not delete $ns" >&2; rc=1; }; }
done
exit $rc
