#!/usr/bin/env bash
# Creates the nodes of a multi-node deployment on one machine: network namespaces
# <prefix>-node1..3, each with loopback and one interface eth0 (address <subnet>.N/24), joined by
# veth pairs to a bridge br0 that lives in its own namespace <prefix>-br. Nothing is added to the
# host's network namespace. Needs root and iproute2. See common.sh for the settings
# (DYNAMO_NETNS, DYNAMO_NETNS_SUBNET). Undo with down.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$here/common.sh"
need_root_and_ip

if [ -n "$(existing_ns)" ]; then
  echo "namespaces of '$prefix' already exist: $(existing_ns | tr '\n' ' ')- run down.sh first or pick another DYNAMO_NETNS" >&2
  exit 4
fi

# Half-built topologies are removed on failure.
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "up.sh failed; removing what it created" >&2; "$here/down.sh" >/dev/null 2>&1 || true; fi' EXIT

ip=$ip_bin
$ip netns add "$bridge_ns"
$ip -n "$bridge_ns" link set lo up
$ip -n "$bridge_ns" link add br0 type bridge
$ip -n "$bridge_ns" link set br0 up
for i in $(seq 1 "$nodes"); do
  ns=$(node_ns "$i")
  $ip netns add "$ns"
  $ip -n "$ns" link set lo up
  # Created inside the bridge namespace; the peer goes straight into the node.
  $ip -n "$bridge_ns" link add "veth$i" type veth peer name eth0 netns "$ns"
  $ip -n "$bridge_ns" link set "veth$i" master br0
  $ip -n "$bridge_ns" link set "veth$i" up
  $ip -n "$ns" addr add "$subnet.$i/24" dev eth0
  $ip -n "$ns" link set eth0 up
done

# Wait until every node's eth0 has carrier (the bridge ports are up).
for i in $(seq 1 "$nodes"); do
  ns=$(node_ns "$i")
  for _ in $(seq 1 50); do
    if $ip -n "$ns" -o link show eth0 | grep -q 'LOWER_UP'; then break; fi
    sleep 0.1
  done
  $ip -n "$ns" -o link show eth0 | grep -q 'LOWER_UP' || { echo "eth0 of $ns has no carrier" >&2; exit 5; }
done

echo "DYNAMO_NETNS=$prefix"
for i in $(seq 1 "$nodes"); do
  echo "node$i $subnet.$i $(node_ns "$i")"
done
