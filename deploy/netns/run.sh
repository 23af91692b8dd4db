#!/usr/bin/env bash
# Runs a command inside one node of the deployment up.sh created:
#   deploy/netns/run.sh node2 <command> [args...]
# The command sees only that node's network (loopback and eth0 = <subnet>.2); files, users and
# processes are the host's. DYNAMO_NETNS selects the deployment (default dyn-demo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
if [ $# -lt 2 ]; then
  echo "usage: $0 node<N> <command> [args...]" >&2
  exit 2
fi
need_root_and_ip
n=$(node_number "$1")
shift
exec "$ip_bin" netns exec "$(node_ns "$n")" "$@"
