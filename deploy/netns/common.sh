# Shared by the deploy/netns scripts (sourced, not run).
#   DYNAMO_NETNS         name prefix of the namespaces (default dyn-demo): <prefix>-br holds the
#                        bridge, <prefix>-node1..3 are the nodes. Give parallel runs different prefixes.
#   DYNAMO_NETNS_SUBNET  first three octets of the nodes' /24 (default 10.213.0): nodeN is .N
#   DYNAMO_NETNS_NODES   how many nodes (default 3)
prefix=${DYNAMO_NETNS:-dyn-demo}
subnet=${DYNAMO_NETNS_SUBNET:-10.213.0}
nodes=${DYNAMO_NETNS_NODES:-3}
ip_bin=$(command -v ip || echo /usr/sbin/ip)

if ! [[ $prefix =~ ^[a-z0-9][a-z0-9-]{0,23}$ ]]; then
  echo "DYNAMO_NETNS must match ^[a-z0-9][a-z0-9-]{0,23}\$ (got '$prefix')" >&2
  exit 2
fi
if ! [[ $subnet =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]]; then
  echo "DYNAMO_NETNS_SUBNET must be three octets like 10.213.0 (got '$subnet')" >&2
  exit 2
fi
if ! [[ $nodes =~ ^[1-9]$ ]]; then
  echo "DYNAMO_NETNS_NODES must be 1..9 (got '$nodes')" >&2
  exit 2
fi

bridge_ns="$prefix-br"
node_ns() { echo "$prefix-node$1"; }

need_root_and_ip() {
  if [ ! -x "$ip_bin" ]; then
    echo "iproute2 'ip' not found (Debian: apt-get install -y iproute2)" >&2
    exit 3
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "network namespaces need root (run with sudo)" >&2
    exit 3
  fi
}

# Namespaces of this prefix that exist now.
existing_ns() {
  "$ip_bin" netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-(br|node[0-9]+)\$" || true
}

# Node number (1..nodes) from "nodeN" or "N".
node_number() {
  local n=${1#node}
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$nodes" ]; then
    echo "unknown node '$1': use node1..node$nodes" >&2
    exit 2
  fi
  echo "$n"
}
