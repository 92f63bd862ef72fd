#!/usr/bin/env bash
# How fast `sluice replay` paces on this machine: the highest rate it
# sends at with at most 1% pacing error, against a target that keeps up
# as well as one can (zmq_source -> zmq_sink with batch 64: the acks must
# come back for the replay to be a replay).
#
#   bench/replay_rate.sh [--duration SECONDS] BUILD_DIR
#
# Rates are stepped up (100k, 200k, 500k, 1M, 2M, 5M, 10M records/s) until
# one misses, then the gap is halved twice; the highest that held is
# printed as
#   replay max rate: N records/s (pacing error E%)
# docs/replay.md ("How fast the replayer goes") says what limits it.
# Exit status: 0 when the runs worked (a slow machine is reported, not
# failed), 1 when a replay failed, 2 on a usage or setup problem.
set -euo pipefail

DURATION=3
BUILD=
usage() {
    echo "usage: $0 [--duration SECONDS] BUILD_DIR" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --duration)
        [ $# -ge 2 ] || usage
        DURATION=$2
        shift
        ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
        [ -z "$BUILD" ] || usage
        BUILD=$1
        ;;
    esac
    shift
done
[ -n "$BUILD" ] || usage
case $DURATION in '' | *[!0-9]* | 0) usage ;; esac
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
    echo "replay_rate: no build folder" >&2
    exit 2
}
SLUICE=$BUILD/tools/sluice
for f in "$SLUICE" "$BUILD/stages/zmq_source.so" "$BUILD/stages/zmq_sink.so" \
    "$BUILD/stages/generator.so"; do
    [ -e "$f" ] || {
        echo "replay_rate: $f is missing: build first" >&2
        exit 2
    }
done
export SLUICE_PLUGIN_PATH=$BUILD/stages
TARGET_RATE=500000

TMP=$(mktemp -d /tmp/sluice-replay-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# The records: 100k of the generator's default shape (six fields, about
# 100 bytes), recorded from a topology of their own. The replays loop
# over them at the rate asked (--rate ignores the recorded offsets).
cat >"$TMP/gen.yaml" <<EOF
name: replay-bench-gen
stages:
  - name: src
    plugin: generator
    config: {count: 100000}
  - name: sink
    plugin: "null"
EOF
"$SLUICE" record "$TMP/gen.yaml" --stage src -o "$TMP/records.trace" \
    >"$TMP/record.out" 2>&1 || {
    echo "replay_rate: recording the records failed:" >&2
    cat "$TMP/record.out" >&2
    exit 2
}

# The target, on unix sockets in the temporary folder: no port to find.
cat >"$TMP/target.yaml" <<EOF
name: replay-bench-target
stages:
  - name: in
    plugin: zmq_source
    config: {endpoint: "ipc://$TMP/in.sock"}
  - name: out
    plugin: zmq_sink
    config: {endpoint: "ipc://$TMP/out.sock", batch: 64}
EOF

# json_num FILE KEY: the number after "KEY": in a replay report.
json_num() {
    grep -o "\"$2\": *[-0-9.e+]*" "$1" | head -n 1 | sed 's/.*: *//'
}

best=0
best_err=
status=0

# try RATE: one replay at RATE records/s; 0 when it paced within 1%
# (best and best_err updated), 1 when it did not, 2 when it failed.
try() {
    local rate=$1
    # A record sent a second late is already lost to the pacing; the
    # target's last partial batch of 64 waits for its shutdown: 1 s.
    if ! timeout 300 "$SLUICE" replay "$TMP/records.trace" \
        --topology "$TMP/target.yaml" --rate "$rate/s" --loop \
        --duration "${DURATION}s" --timeout 1s --drain 0 --quiet \
        --json "$TMP/r.json" >"$TMP/r.out" 2>&1; then
        echo "replay_rate: FAILED: the replay at $rate/s:" >&2
        cat "$TMP/r.out" >&2
        return 2
    fi
    local err achieved comp pct
    err=$(json_num "$TMP/r.json" pacing_error)
    achieved=$(json_num "$TMP/r.json" achieved_rate)
    comp=$(json_num "$TMP/r.json" completion_rate)
    pct=$(awk -v e="$err" 'BEGIN { printf "%.2f", e * 100 }')
    printf '  %9d/s: sent %10.0f/s, pacing error %6s%%, acked %10.0f/s\n' \
        "$rate" "$achieved" "$pct" "$comp"
    if awk -v e="$err" 'BEGIN { exit !(e <= 0.01) }'; then
        best=$rate
        best_err=$pct
        return 0
    fi
    return 1
}

echo "replay pacing against zmq_source -> zmq_sink (batch 64), ${DURATION} s per rate:"
missed=0
for rate in 100000 200000 500000 1000000 2000000 5000000 10000000; do
    rc=0
    try "$rate" || rc=$?
    if [ "$rc" = 2 ]; then
        status=1
        break
    fi
    if [ "$rc" = 1 ]; then
        missed=$rate
        break
    fi
done
# Two halvings of the gap between the last rate that held and the first
# that did not, to 10k/s.
if [ "$status" = 0 ] && [ "$best" -gt 0 ] && [ "$missed" -gt 0 ]; then
    for _ in 1 2; do
        mid=$(((best + missed) / 2 / 10000 * 10000))
        [ "$mid" -gt "$best" ] || break
        rc=0
        try "$mid" || rc=$?
        if [ "$rc" = 2 ]; then
            status=1
            break
        fi
        [ "$rc" = 0 ] || missed=$mid
    done
fi

if [ "$best" = 0 ]; then
    echo "replay max rate: below 100000 records/s (pacing error over 1% at 100000/s)"
else
    note=
    [ "$best" -ge "$TARGET_RATE" ] || note=" (below the $TARGET_RATE/s target)"
    echo "replay max rate: $best records/s (pacing error $best_err%)$note"
fi
exit $status
