#!/bin/sh
# Runs one node of a sluice topology in a StatefulSet pod (docs/deploy.md,
# "Kubernetes"). Pod NAME-i runs the i-th node of SLUICE_NODES.
#
#   entrypoint.sh key   (init container) copies this node's secret key from
#                       the mounted Secrets into SLUICE_KEYS_DIR, mode 0600,
#                       owned by the user that will run sluice
#   entrypoint.sh run   writes a copy of the topology in which this node's
#                       address is the pod's IP, then execs sluice run
#
# Environment (the StatefulSet sets them):
#   POD_NAME, POD_NAMESPACE, POD_IP   from the downward API
#   SLUICE_NODES           node names in pod-ordinal order ("ingest store")
#   SLUICE_TOPOLOGY        the topology as mounted (default
#                          /etc/sluice/conf/topology.yaml)
#   SLUICE_SERVICE         the headless Service's name (default sluice)
#   SLUICE_CLUSTER_DOMAIN  default cluster.local
#   SLUICE_SECRETS_DIR     where the init container sees NODE.key of every
#                          node (default /etc/sluice/secrets)
#   SLUICE_KEYS_DIR        the topology's keys_dir (default
#                          /var/run/sluice/keys)
#   SLUICE_RUN_DIR         where the copy of the topology goes (default
#                          /var/run/sluice)
#   SLUICE_DATA_DIRS       folders to create before the run (outputs, dead
#                          letters; default /var/lib/sluice/out
#                          /var/lib/sluice/dlq)
#   SLUICE_METRICS_PORT    default 9464; served on every interface for the
#                          probes
#   SLUICE_ARGS            more arguments for `sluice run`, split at spaces
#   SLUICE_BIN             default sluice (on PATH)
set -eu

me=sluice-entrypoint
die() {
    echo "$me: $*" >&2
    exit 2
}

mode=${1:-}
case $mode in key | run) ;; *) die "usage: entrypoint.sh key|run" ;; esac

: "${POD_NAME:?$me: POD_NAME is not set (downward API metadata.name)}"
: "${SLUICE_NODES:?$me: SLUICE_NODES is not set (the node names, in pod-ordinal order)}"
SLUICE_TOPOLOGY=${SLUICE_TOPOLOGY:-/etc/sluice/conf/topology.yaml}
SLUICE_SERVICE=${SLUICE_SERVICE:-sluice}
SLUICE_CLUSTER_DOMAIN=${SLUICE_CLUSTER_DOMAIN:-cluster.local}
SLUICE_SECRETS_DIR=${SLUICE_SECRETS_DIR:-/etc/sluice/secrets}
SLUICE_KEYS_DIR=${SLUICE_KEYS_DIR:-/var/run/sluice/keys}
SLUICE_RUN_DIR=${SLUICE_RUN_DIR:-/var/run/sluice}
SLUICE_DATA_DIRS=${SLUICE_DATA_DIRS:-/var/lib/sluice/out /var/lib/sluice/dlq}
SLUICE_METRICS_PORT=${SLUICE_METRICS_PORT:-9464}
SLUICE_BIN=${SLUICE_BIN:-sluice}

# The pod's ordinal is what follows the last '-' of its name.
ordinal=${POD_NAME##*-}
case $ordinal in
'' | *[!0-9]*) die "pod name '$POD_NAME' does not end in -ORDINAL: not a StatefulSet pod?" ;;
esac
node=
count=0
for n in $SLUICE_NODES; do
    [ "$count" = "$ordinal" ] && node=$n
    count=$((count + 1))
done
[ -n "$node" ] || die "pod $POD_NAME (ordinal $ordinal) has no node: SLUICE_NODES names $count ($SLUICE_NODES), so replicas must be $count"

if [ "$mode" = key ]; then
    src=$SLUICE_SECRETS_DIR/$node.key
    dst=$SLUICE_KEYS_DIR/$node.key
    [ -r "$src" ] || die "no secret key for node '$node' at $src; create it with: kubectl create secret generic sluice-key-$node --from-file=$node.key=keys/$node.key"
    umask 077
    mkdir -p "$SLUICE_KEYS_DIR"
    # Written aside and moved, so that sluice never sees half a key.
    cp "$src" "$dst.tmp"
    chmod 600 "$dst.tmp"
    mv -f "$dst.tmp" "$dst"
    echo "$me: pod $POD_NAME is node '$node'; its key is in $dst"
    exit 0
fi

: "${POD_NAMESPACE:?$me: POD_NAMESPACE is not set (downward API metadata.namespace)}"
: "${POD_IP:?$me: POD_IP is not set (downward API status.podIP)}"
[ -r "$SLUICE_TOPOLOGY" ] || die "cannot read the topology $SLUICE_TOPOLOGY"
case $POD_IP in *:*) die "POD_IP $POD_IP is IPv6; this entrypoint handles IPv4 pod addresses only" ;; esac

# This node's address in the topology: the pod's stable DNS name. The node
# binds it, and binding takes an IP address, not a name, so the copy gets
# the pod's IP there; the other nodes keep connecting to the name, which
# follows the pod when it is rescheduled.
fqdn=$POD_NAME.$SLUICE_SERVICE.$POD_NAMESPACE.svc.$SLUICE_CLUSTER_DOMAIN
re=$(printf '%s' "$fqdn" | sed 's/[.]/\\./g')
pattern="(address:[[:space:]]*)[\"']?${re}[\"']?([[:space:]]*([,}#]|\$))"
found=$(grep -cE "$pattern" "$SLUICE_TOPOLOGY" || true)
[ "$found" = 1 ] || die "$SLUICE_TOPOLOGY: expected one 'address: $fqdn' (node '$node', this pod), found $found"
mkdir -p "$SLUICE_RUN_DIR"
topology=$SLUICE_RUN_DIR/topology.yaml
sed -E "s/$pattern/\\1$POD_IP\\2/" "$SLUICE_TOPOLOGY" >"$topology.tmp"
mv -f "$topology.tmp" "$topology"

for d in $SLUICE_DATA_DIRS; do
    mkdir -p "$d"
done

echo "$me: pod $POD_NAME is node '$node', listening on $POD_IP"
# exec: sluice is then the container's main process and gets its SIGTERM.
# shellcheck disable=SC2086
exec "$SLUICE_BIN" run "$topology" --node "$node" \
    --metrics "0.0.0.0:$SLUICE_METRICS_PORT" ${SLUICE_ARGS:-}
