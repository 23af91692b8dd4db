#!/usr/bin/env bash
# Cuts or restores one node's network link (its veth port on the bridge):
#   deploy/netns/link.sh node2 down   # node2 can no longer reach or be reached by anyone
#   deploy/netns/link.sh node2 up
# Processes on the node keep running; their connections see silence (no reset), as with a
# pulled cable. DYNAMO_NETNS selects the deployment (default dyn-demo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
if [ $# -ne 2 ] || { [ "$2" != up ] && [ "$2" != down ]; }; then
  echo "usage: $0 node<N> up|down" >&2
  exit 2
fi
need_root_and_ip
n=$(node_number "$1")
"$ip_bin" -n "$bridge_ns" link set "veth$n" "$2"
