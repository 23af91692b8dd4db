#!/usr/bin/env bash
# `npm run test:multinode`: runs the multi-node suite on its own namespace prefix and removes the
# namespaces on any exit (also Ctrl-C), even if jest dies before its afterAll.
set -uo pipefail
cd "$(dirname "$0")/../.."
export DYNAMO_NETNS=${DYNAMO_NETNS:-dyn-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}
cleanup() {
  if [ "$(id -u)" = 0 ] && { command -v ip >/dev/null || [ -x /usr/sbin/ip ]; }; then
    deploy/netns/down.sh || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
npx jest -c jest.multinode.config.js --detectOpenHandles "$@"
