#!/usr/bin/env bash
# One topology across two nodes over tcp, against raw libzmq over tcp.
#
#   bench/multinode.sh [--count N] [--reps N] BUILD_DIR
#
# sluice: `sluice run FILE --node b` (a null sink) and `sluice run FILE
# --node a` (a generator of N default records) as two processes on
# 127.0.0.1, the link between them CURVE-encrypted with keys from
# `sluice keygen` (docs/deploy.md). Node b is started first; once it
# listens, the clock starts, node a is started, and the clock stops when
# node b has exited (so node a's start-up, its CURVE handshake and node
# b's end are inside). records/s = N / that time.
#
# raw: bench/raw_zmq --transport tcp --curve --batch 256 (gen in one
# process, sink in another, one PUSH/PULL link over tcp with CURVE; sluice's
# default batch is 256), and the same without --curve for the cost of the
# encryption. docs/bench.md ("Two nodes over tcp") has the details.
#
# Called by bench/run_bench.sh (with its --quick counts); prints a table
# and the lines
#   multinode records/s: S
#   raw tcp records/s: R (batch=256, CURVE), P (batch=256, plain tcp)
#   multinode ratio: 0.NN (sluice 2 nodes / raw tcp+CURVE); 0.NN vs raw plain tcp
# Exit status: 0 when every run was correct (both nodes exited 0, both
# ledgers balanced, node b received and sank exactly N records, raw_zmq's
# counts matched), 1 when one was not, 2 on a usage or setup problem.
# SLUICE_BENCH_LIMIT (seconds, default 300) bounds each single run.
set -euo pipefail
export LC_ALL=C

N=5000000
REPS=3
BUILD=

usage() {
    echo "usage: $0 [--count N] [--reps N] BUILD_DIR" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --count | --reps)
        [ $# -ge 2 ] || usage
        [ "$1" = --count ] && N=$2 || REPS=$2
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
case $N in '' | *[!0-9]* | 0) usage ;; esac
case $REPS in '' | *[!0-9]* | 0) usage ;; esac
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
    echo "multinode: no build folder" >&2
    exit 2
}
SLUICE=$BUILD/tools/sluice
RAW=$BUILD/bench/raw_zmq
for f in "$SLUICE" "$RAW" "$BUILD/stages/generator.so" "$BUILD/stages/null.so"; do
    [ -e "$f" ] || {
        echo "multinode: $f is missing: build first (make build)" >&2
        exit 2
    }
done
export SLUICE_PLUGIN_PATH=$BUILD/stages
LIMIT=${SLUICE_BENCH_LIMIT:-300}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-multinode.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
    echo "multinode: FAILED: $*" | tee -a "$TMP/failures" >&2
}
why() { [ "$1" = 124 ] && echo "timed out after ${LIMIT}s" || echo "exited $1"; }

fmt() { LC_ALL=C awk -v v="$1" 'BEGIN {
    s = sprintf("%.0f", v); o = ""
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'; }
max_of() { printf '%s\n' "$@" | sort -n | tail -n 1; }
median_of() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
    END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
cpu_per() { awk -v n="$1" '{ printf "%.2f", (n > 0 ? ($1 + $2) * 1e6 / n : 0) }' "$TMP/time"; }

# json_num FILE KEY [STAGE]: as in run_bench.sh (the report is one line).
json_num() {
    local text
    text=$(cat "$1")
    if [ $# -ge 3 ]; then
        text=$(printf '%s\n' "$text" | sed 's/{"name":/\n&/g' |
            grep "^{\"name\":\"$3\"" || true)
    fi
    printf '%s\n' "$text" | grep -o "\"$2\":[-+0-9.eE]*" | head -n 1 |
        cut -d: -f2
}

# ---- keys, ports, topology --------------------------------------------------

mkdir "$TMP/keys"
for node in a b; do
    "$SLUICE" keygen "$node" -d "$TMP/keys" >"$TMP/keygen.out" 2>&1 || {
        echo "multinode: sluice keygen $node failed:" >&2
        cat "$TMP/keygen.out" >&2
        exit 2
    }
done

# Whether a tcp port appears in the kernel's tables at all (listening or
# connected), IPv4 or IPv6.
port_used() {
    local hex
    hex=$(printf ':%04X ' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{ print $2 " " }' |
        grep -q -- "$hex"
}
port_listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

# Node a uses ports BASE..BASE+1 and node b BASE+10..BASE+11 (a stage at
# index i that takes input from another node listens on port + i: the sink,
# index 1, on BASE+11). Below the usual ephemeral range (32768-60999), so
# no outgoing connection holds them.
BASE=
for _ in $(seq 50); do
    b=$((20000 + RANDOM % 12000))
    if ! port_used "$b" && ! port_used "$((b + 1))" &&
        ! port_used "$((b + 10))" && ! port_used "$((b + 11))"; then
        BASE=$b
        break
    fi
done
[ -n "$BASE" ] || {
    echo "multinode: found no free ports" >&2
    exit 2
}
SINK_PORT=$((BASE + 11))

cat >"$TMP/two.yaml" <<EOF
# bench/multinode.sh: generator on node a -> null on node b, over tcp.
name: bench-multinode
keys_dir: keys
hosts:
  a: {address: 127.0.0.1, port: $BASE, key_file: keys/a.pub}
  b: {address: 127.0.0.1, port: $((BASE + 10)), key_file: keys/b.pub}
stages:
  - name: gen
    plugin: generator
    config:
      count: $N
  - name: sink
    plugin: "null"
    host: b
EOF
for node in a b; do
    "$SLUICE" check "$TMP/two.yaml" --node "$node" >"$TMP/check.out" 2>&1 || {
        echo "multinode: sluice check --node $node failed:" >&2
        cat "$TMP/check.out" >&2
        exit 2
    }
done

# ---- runs ---------------------------------------------------------------------

# run_raw [ARGS...]: "records/s cpu-us/record" of one raw_zmq tcp run (CPU
# of its sink process included: it is waited for).
run_raw() {
    local rc=0 TIMEFORMAT='%U %S'
    { time timeout "$LIMIT" "$RAW" --count "$N" --batch 256 --transport tcp \
        "$@" >"$TMP/raw.out" 2>"$TMP/raw.err" || rc=$?; } 2>"$TMP/time"
    if [ "$rc" != 0 ]; then
        fail "raw_zmq --transport tcp $* $(why "$rc"): $(cat "$TMP/raw.err")"
        echo "0 0"
        return
    fi
    echo "$(grep -o 'rate=[0-9]*' "$TMP/raw.out" | cut -d= -f2) $(cpu_per "$N")"
}

# expect_in LOG TEXT: the node's summary must have this line.
expect_in() {
    grep -qF -- "$2" "$1" || fail "$(basename "$1") lacks \"$2\": $(tail -n 3 "$1")"
}

# run_nodes I: one two-node run; prints "records/s cpu-us/record" (CPU of
# both nodes, worker threads included).
run_nodes() {
    local i=$1 rcb=0 rca=0 t0 t1 pb pa TIMEFORMAT='%U %S'
    local a="$TMP/a-$i" b="$TMP/b-$i"
    {
        time {
            timeout -k 10 "$LIMIT" "$SLUICE" run "$TMP/two.yaml" --node b --grace 2s \
                --report "$b.json" >"$b.log" 2>&1 &
            pb=$!
            PIDS+=("$pb")
            # The clock starts once node b listens: node a's first
            # connection attempt then finds it (a refused one would wait
            # ZeroMQ's 100 ms reconnect interval, timed).
            for _ in $(seq 1000); do
                port_listening "$SINK_PORT" && break
                kill -0 "$pb" 2>/dev/null || break
                sleep 0.01
            done
            t0=$(date +%s%N)
            if port_listening "$SINK_PORT"; then
                timeout -k 10 "$LIMIT" "$SLUICE" run "$TMP/two.yaml" --node a --grace 2s \
                    --report "$a.json" >"$a.log" 2>&1 &
                pa=$!
                PIDS+=("$pa")
                wait "$pb" || rcb=$?
                t1=$(date +%s%N)
                wait "$pa" || rca=$?
            else
                # Node a would wait for it until the limit: not started.
                kill "$pb" 2>/dev/null || true
                wait "$pb" || rcb=$?
                echo "node b did not listen on port $SINK_PORT within 10 s" >"$a.log"
                t1=$t0 rca=-
            fi
            echo "$rca $rcb $t0 $t1" >"$TMP/nodes"
        }
    } 2>"$TMP/time"
    PIDS=()
    read -r rca rcb t0 t1 <"$TMP/nodes"
    if [ "$rca" != 0 ] || [ "$rcb" != 0 ]; then
        fail "run $i: node a $(why "$rca"), node b $(why "$rcb"): a: $(tail -n 3 "$a.log") b: $(tail -n 3 "$b.log")"
        echo "0 0"
        return
    fi
    local f in
    for f in "$a.json" "$b.json"; do
        grep -q '"ledger_ok":true' "$f" 2>/dev/null || fail "run $i: $(basename "$f"): ledger not balanced"
    done
    in=$(json_num "$b.json" in sink)
    [ "$in" = "$N" ] || fail "run $i: node b's sink got ${in:-?} records, expected $N"
    expect_in "$a.log" "link 'gen' -> 'sink' (node 'a' -> 'b'): sent $N"
    expect_in "$b.log" "link 'gen' -> 'sink' (node 'a' -> 'b'): received $N"
    grep -q "accepted node a (CURVE)" "$b.log" || fail "run $i: node b did not log a CURVE peer"
    awk -v n="$N" -v t0="$t0" -v t1="$t1" 'BEGIN {
        printf "%.0f ", (t1 > t0 ? n / ((t1 - t0) / 1e9) : 0) }'
    cpu_per "$N"
    echo
}

echo "== two nodes over tcp: generator (node a) -> null (node b), $(fmt "$N") records, CURVE"
echo "   two sluice processes on 127.0.0.1 (default batch 256, queue 1024), timed from"
echo "   starting node a (node b listening) until node b exits; raw = bench/raw_zmq"
echo "   --transport tcp (gen and sink processes, one PUSH/PULL link, batch 256), with"
echo "   and without CURVE; runs interleaved, best of $REPS reported;"
echo "   records/s (CPU us per record, both processes)"
row() { printf '   %-6s %22s %22s %22s\n' "$@"; }
cell() { echo "$(fmt "$1") ($2)"; }
row run "raw tcp+curve b=256" "raw tcp b=256" "sluice 2 nodes"
RC=() RP=() SL=()
for i in $(seq "$REPS"); do
    # Not in $(...): run_nodes keeps the nodes' pids for the exit trap.
    run_raw --curve >"$TMP/res"
    read -r r cc <"$TMP/res"
    RC+=("$r")
    run_raw >"$TMP/res"
    read -r r cp <"$TMP/res"
    RP+=("$r")
    run_nodes "$i" >"$TMP/res"
    read -r r cs <"$TMP/res"
    SL+=("$r")
    row "$i" "$(cell "${RC[-1]}" "$cc")" "$(cell "${RP[-1]}" "$cp")" "$(cell "${SL[-1]}" "$cs")"
done
brc=$(max_of "${RC[@]}")
brp=$(max_of "${RP[@]}")
bsl=$(max_of "${SL[@]}")
row best "$(fmt "$brc")" "$(fmt "$brp")" "$(fmt "$bsl")"
row median "$(fmt "$(median_of "${RC[@]}")")" "$(fmt "$(median_of "${RP[@]}")")" \
    "$(fmt "$(median_of "${SL[@]}")")"
# The best sluice run, per node: where the time went and the sink's
# end-to-end latency (both nodes read this machine's clock).
for i in $(seq "$REPS"); do
    if [ "${SL[$((i - 1))]}" != "$bsl" ] || [ ! -s "$TMP/b-$i.json" ]; then
        continue
    fi
    busy=$(json_num "$TMP/a-$i.json" busy_s gen)
    took=$(json_num "$TMP/a-$i.json" elapsed_s)
    printf '   %-5s busy %6.2fs  max_queue %s  (node a; its run took %.2fs)\n' gen \
        "${busy:-0}" "$(json_num "$TMP/a-$i.json" max_queue gen)" "${took:-0}"
    busy=$(json_num "$TMP/b-$i.json" busy_s sink)
    printf '   %-5s busy %6.2fs  max_queue %s  (node b)\n' sink \
        "${busy:-0}" "$(json_num "$TMP/b-$i.json" max_queue sink)"
    grep -o '"latency_ns":{[^}]*}' "$TMP/b-$i.json" >"$TMP/lat.json" || true
    if [ -s "$TMP/lat.json" ]; then
        us() { awk -v v="$(json_num "$TMP/lat.json" "$1")" 'BEGIN { printf "%.1f", v / 1000 }'; }
        echo "   sink latency at full speed: p50 $(us p50) us, p99 $(us p99) us, max $(us max) us"
    fi
    break
done
echo "multinode records/s: $bsl"
echo "raw tcp records/s: $brc (batch=256, CURVE), $brp (batch=256, plain tcp)"
awk -v s="$bsl" -v r="$brc" -v p="$brp" 'BEGIN {
    printf "multinode ratio: %.2f (sluice 2 nodes / raw tcp+CURVE); %.2f vs raw plain tcp\n",
        (r > 0 ? s / r : 0), (p > 0 ? s / p : 0) }'
[ ! -s "$TMP/failures" ]
