#!/usr/bin/env bash
# sluice benchmarks, side by side with a hand-written libzmq reference.
# docs/bench.md explains what each number means and how to reproduce it.
#
#   bench/run_bench.sh [--quick] [--reps N] BUILD_DIR
#
# BUILD_DIR holds tools/sluice, stages/*.so and bench/raw_zmq (`make bench`
# passes its build folder). --quick is a smoke run of a few seconds.
# Exit status: 0 when every run was correct (record counts, ledgers, output
# line counts), 1 when one was not, 2 on a usage or setup problem. Slow
# numbers alone never fail the run: they are reported. SLUICE_BENCH_LIMIT
# (seconds, default 300) bounds each single run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
REPS=
BUILD=

usage() {
    echo "usage: $0 [--quick] [--reps N] BUILD_DIR" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --reps)
        [ $# -ge 2 ] || usage
        REPS=$2
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
abs=$(cd "$BUILD" 2>/dev/null && pwd) || {
    echo "run_bench: no build folder '$BUILD'" >&2
    exit 2
}
BUILD=$abs

if [ "$QUICK" = 1 ]; then
    N=1000000
    ETL_N=200000
    LAT_SECS=1
    REPS=${REPS:-1}
else
    N=5000000
    ETL_N=1000000
    LAT_SECS=3
    REPS=${REPS:-3}
fi
case $REPS in '' | *[!0-9]* | 0) usage ;; esac

SLUICE=$BUILD/tools/sluice
SLUICE_ARGS=""
RAW=$BUILD/bench/raw_zmq
for f in "$SLUICE" "$RAW"; do
    if [ ! -x "$f" ]; then
        echo "run_bench: $f is missing: build first (make build)" >&2
        exit 2
    fi
done
# The plugins of this build, whatever else is installed.
export SLUICE_PLUGIN_PATH=$BUILD/stages

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# Failures are recorded in a file: most checks run in $(...) subshells.
fail() {
    echo "run_bench: FAILED: $*" | tee -a "$TMP/failures" >&2
}

# ---- helpers ----------------------------------------------------------------

# No single run may hang `make bench`: a run is stopped after this many
# seconds (exit 124 then, reported as a failure).
LIMIT=${SLUICE_BENCH_LIMIT:-300}

# json_num FILE KEY [STAGE]: the first number under "KEY" in the report,
# within the named stage's object if STAGE is given. The report is ours and
# flat enough for grep (one line, stages as {"name":...} objects).
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

# Integer with thousands separators.
fmt() { LC_ALL=C awk -v v="$1" 'BEGIN {
    s = sprintf("%.0f", v); o = ""
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'; }

div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? a / b : 0) }'; }

max_of() { printf '%s\n' "$@" | sort -n | tail -n 1; }
median_of() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
    END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

why() { [ "$1" = 124 ] && echo "timed out after ${LIMIT}s" || echo "exited $1"; }

# cpu_per COUNT: CPU time (user + system, all threads) of the last timed
# command, in microseconds per record, from $TMP/time.
cpu_per() { awk -v n="$1" '{ printf "%.2f", (n > 0 ? ($1 + $2) * 1e6 / n : 0) }' "$TMP/time"; }

# run_raw BATCH [ARGS...]: prints "records/s cpu-us/record" of one raw_zmq
# run (CPU of its transform process included: it is waited for). raw_zmq
# itself checks that every record arrived (exit 1 otherwise).
run_raw() {
    local rc=0 TIMEFORMAT='%U %S'
    { time timeout "$LIMIT" "$RAW" --count "$N" --batch "$@" >"$TMP/raw.out" \
        2>"$TMP/raw.err" || rc=$?; } 2>"$TMP/time"
    if [ "$rc" != 0 ]; then
        fail "raw_zmq --batch $* $(why "$rc"): $(cat "$TMP/raw.err")"
        echo "0 0"
        return
    fi
    echo "$(grep -o 'rate=[0-9]*' "$TMP/raw.out" | cut -d= -f2) $(cpu_per "$N")"
}

# with_count TEMPLATE OUT COUNT [RATE]: a copy of a topology with the
# generator's count (and a rate) replaced.
with_count() {
    local extra=""
    [ $# -ge 4 ] && extra="\\n\\1rate: $4"
    sed -e "s/^\\([[:space:]]*\\)count:.*/\\1count: $3$extra/" "$1" >"$2"
    grep -q "count: $3\$" "$2" || {
        echo "run_bench: no 'count:' line in $1" >&2
        exit 2
    }
}

# run_sluice YAML REPORT SINK EXPECT: runs a topology, checks the ledger and
# the sink's record count; prints "records/s cpu-us/record" (the sink's
# records over the report's elapsed time; CPU of the whole process).
run_sluice() {
    local rc=0 TIMEFORMAT='%U %S'
    { time timeout -k 10 "$LIMIT" "$SLUICE" run "$1" --report "$2" --quiet \
        $SLUICE_ARGS >"$TMP/sluice.out" 2>&1 || rc=$?; } 2>"$TMP/time"
    if [ "$rc" != 0 ] || [ ! -s "$2" ]; then
        fail "sluice run $1 $(why "$rc"): $(tail -n 5 "$TMP/sluice.out")"
        echo "0 0"
        return
    fi
    local in elapsed
    in=$(json_num "$2" in "$3")
    elapsed=$(json_num "$2" elapsed_s)
    grep -q '"ledger_ok":true' "$2" || fail "$1: ledger not balanced"
    [ "$in" = "$4" ] || fail "$1: sink '$3' got ${in:-?} records, expected $4"
    echo "$(div "${in:-0}" "$elapsed") $(cpu_per "$4")"
}

# ---- header -----------------------------------------------------------------

btype=$(grep -s '^CMAKE_BUILD_TYPE:' "$BUILD/CMakeCache.txt" | cut -d= -f2 || true)
sanit=$(grep -s '^SLUICE_SANITIZE:' "$BUILD/CMakeCache.txt" | cut -d= -f2 || true)
echo "sluice benchmark: $BUILD (${btype:-unknown build type}), $(nproc) CPUs," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
case "$btype:$sanit" in
Debug:* | *:ON) echo "WARNING: a Debug or sanitizer build: numbers are not representative" ;;
esac
[ "$QUICK" = 1 ] && echo "QUICK run: small counts, $REPS repetition(s); not for the record"
echo

# ---- 1. throughput: sluice vs raw libzmq --------------------------------------

echo "== throughput: generator -> fields (set country) -> null, $(fmt "$N") records"
echo "   ~98-byte msgpack maps; raw = bench/raw_zmq (3 threads, inproc PUSH/PULL);"
echo "   sluice with its default batch (256); runs interleaved, best of $REPS"
echo "   reported; records/s (CPU us per record)"
row() { printf '   %-6s %20s %20s %20s %20s\n' "$@"; }
cell() { echo "$(fmt "$1") ($2)"; }
row run "raw batch=64" "raw batch=256" "raw batch=1" sluice
with_count "$ROOT/bench/pipeline.yaml" "$TMP/pipeline.yaml" "$N"
R64=() R256=() R1=() SL=() CSL=()
for i in $(seq "$REPS"); do
    read -r r c64 < <(run_raw 64)
    R64+=("$r")
    read -r r c256 < <(run_raw 256)
    R256+=("$r")
    read -r r c1 < <(run_raw 1)
    R1+=("$r")
    read -r r csl < <(run_sluice "$TMP/pipeline.yaml" "$TMP/pipeline-$i.json" sink "$N")
    SL+=("$r") CSL+=("$csl")
    row "$i" "$(cell "${R64[-1]}" "$c64")" "$(cell "${R256[-1]}" "$c256")" \
        "$(cell "${R1[-1]}" "$c1")" "$(cell "${SL[-1]}" "$csl")"
done
best64=$(max_of "${R64[@]}")
best256=$(max_of "${R256[@]}")
best1=$(max_of "${R1[@]}")
bestsl=$(max_of "${SL[@]}")
row best "$(fmt "$best64")" "$(fmt "$best256")" "$(fmt "$best1")" "$(fmt "$bestsl")"
row median "$(fmt "$(median_of "${R64[@]}")")" "$(fmt "$(median_of "${R256[@]}")")" \
    "$(fmt "$(median_of "${R1[@]}")")" "$(fmt "$(median_of "${SL[@]}")")"
echo "sluice records/s: $bestsl"
echo "raw records/s: $best64 (batch=64), $best256 (batch=256), $best1 (batch=1)"
awk -v s="$bestsl" -v r="$best64" -v r256="$best256" -v r1="$best1" 'BEGIN {
    printf "ratio: %.2f (sluice / raw batch=64); %.2f vs raw batch=256, %.2f vs raw batch=1\n",
        (r > 0 ? s / r : 0), (r256 > 0 ? s / r256 : 0), (r1 > 0 ? s / r1 : 0) }'
# Where the time went in the best sluice run, per stage (busy = time the
# workers spent inside the plugin).
for i in $(seq "$REPS"); do
    if [ "${SL[$((i - 1))]}" != "$bestsl" ] || [ ! -s "$TMP/pipeline-$i.json" ]; then
        continue
    fi
    for st in gen set sink; do
        printf '   %-5s busy %6ss  max_queue %s\n' "$st" \
            "$(json_num "$TMP/pipeline-$i.json" busy_s "$st")" \
            "$(json_num "$TMP/pipeline-$i.json" max_queue "$st")"
    done
    break
done
echo

# ---- 2. latency at half the peak rate -----------------------------------------

echo "== latency: the same pipeline paced at half the peak sluice rate"
if [ "${bestsl:-0}" -gt 0 ]; then
    rate=$((bestsl / 2))
    lcount=$((rate * LAT_SECS))
    with_count "$ROOT/bench/pipeline.yaml" "$TMP/latency.yaml" "$lcount" "$rate"
    read -r got _ < <(run_sluice "$TMP/latency.yaml" "$TMP/latency.json" sink "$lcount")
    # Only the latency object: the stage also has other keys named "max".
    grep -o '"latency_ns":{[^}]*}' "$TMP/latency.json" >"$TMP/latency-ns.json" || true
    lat() { json_num "$TMP/latency-ns.json" "$1"; }
    us() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }
    echo "   generator rate: $(fmt "$rate")/s, $(fmt "$lcount") records;" \
        "achieved $(fmt "$got")/s"
    echo "   end-to-end latency (source timestamp -> null sink), microseconds:"
    echo "latency p50: $(us "$(lat p50)") us  p90: $(us "$(lat p90)") us" \
        " p99: $(us "$(lat p99)") us  max: $(us "$(lat max)") us"
else
    echo "   skipped: no sluice throughput measured"
fi
echo

# ---- 3. ETL: JSON lines -> parse -> reshape -> JSON lines -----------------------

echo "== ETL: file_source (lines) -> json_parse (auto) -> fields (rename+set, auto) -> file_sink jsonl"
awk -v n="$ETL_N" -f "$ROOT/bench/gen_json.awk" >"$TMP/etl-input.jsonl"
echo "   input: $(fmt "$ETL_N") JSON lines, $(fmt "$(wc -c <"$TMP/etl-input.jsonl")") bytes"
sed -e "s#/tmp/sluice-bench/etl-input.jsonl#$TMP/etl-input.jsonl#" \
    -e "s#/tmp/sluice-bench/etl-output.jsonl#$TMP/etl-output.jsonl#" \
    "$ROOT/bench/etl.yaml" >"$TMP/etl.yaml"
ETL=()
for i in $(seq "$REPS"); do
    read -r r c < <(run_sluice "$TMP/etl.yaml" "$TMP/etl-$i.json" write "$ETL_N")
    ETL+=("$r")
    lines=0
    [ -f "$TMP/etl-output.jsonl" ] && lines=$(wc -l <"$TMP/etl-output.jsonl")
    [ "$lines" = "$ETL_N" ] || fail "ETL output has $lines lines, expected $ETL_N"
    echo "   run $i: $(fmt "$r") records/s ($c us CPU per record), output $(fmt "$lines") lines"
done
bestetl=$(max_of "${ETL[@]}")
verdict="meets"
[ "$bestetl" -ge 700000 ] || verdict="BELOW"
echo "etl records/s: $bestetl (best of $REPS; $verdict the 700000 target)"
for i in $(seq "$REPS"); do
    if [ "${ETL[$((i - 1))]}" != "$bestetl" ] || [ ! -s "$TMP/etl-$i.json" ]; then
        continue
    fi
    for st in read parse shape write; do
        printf '   %-5s workers %s  busy %6ss  max_queue %s\n' "$st" \
            "$(json_num "$TMP/etl-$i.json" workers "$st")" \
            "$(json_num "$TMP/etl-$i.json" busy_s "$st")" \
            "$(json_num "$TMP/etl-$i.json" max_queue "$st")"
    done
    break
done
echo

# ---- 4. process lane: sluice's fields stage in child processes -----------------

echo "== process lane: the throughput pipeline with 'set' in lane: process, $(fmt "$N") records"
echo "   raw = bench/raw_zmq --transform-process (its transform in a child process,"
echo "   joined over ipc:// PUSH/PULL), at batch 64 and 256; sluice thread = the"
echo "   thread-lane pipeline again, for the lane's cost; runs interleaved, best of"
echo "   $REPS reported; records/s (CPU us per record, child processes included)"
prow() { printf '   %-6s %19s %19s %19s %19s %19s\n' "$@"; }
prow run "raw ipc b=64" "raw ipc b=256" "process w=1" "process w=2" "thread"
with_count "$ROOT/bench/pipeline_process.yaml" "$TMP/process1.yaml" "$N"
sed -e 's/^\([[:space:]]*\)workers: 1$/\1workers: 2/' "$TMP/process1.yaml" >"$TMP/process2.yaml"
grep -q "workers: 2\$" "$TMP/process2.yaml" || {
    echo "run_bench: no 'workers: 1' line in bench/pipeline_process.yaml" >&2
    exit 2
}
P64=() P256=() PW1=() PW2=() PT=() CPW1=() CPT=()
for i in $(seq "$REPS"); do
    read -r r c64 < <(run_raw 64 --transform-process)
    P64+=("$r")
    read -r r c256 < <(run_raw 256 --transform-process)
    P256+=("$r")
    read -r r cw1 < <(run_sluice "$TMP/process1.yaml" "$TMP/process1-$i.json" sink "$N")
    PW1+=("$r") CPW1+=("$cw1")
    read -r r cw2 < <(run_sluice "$TMP/process2.yaml" "$TMP/process2-$i.json" sink "$N")
    PW2+=("$r")
    read -r r ct < <(run_sluice "$TMP/pipeline.yaml" "$TMP/thread-$i.json" sink "$N")
    PT+=("$r") CPT+=("$ct")
    # A restarted worker means a crash: the run is correct but not clean.
    for f in "$TMP/process1-$i.json" "$TMP/process2-$i.json"; do
        [ ! -s "$f" ] || [ "$(json_num "$f" restarts set)" = 0 ] ||
            fail "$(basename "$f"): stage 'set' restarted a worker process"
    done
    prow "$i" "$(cell "${P64[-1]}" "$c64")" "$(cell "${P256[-1]}" "$c256")" \
        "$(cell "${PW1[-1]}" "$cw1")" "$(cell "${PW2[-1]}" "$cw2")" \
        "$(cell "${PT[-1]}" "$ct")"
done
bp64=$(max_of "${P64[@]}")
bp256=$(max_of "${P256[@]}")
bpw1=$(max_of "${PW1[@]}")
bpw2=$(max_of "${PW2[@]}")
bpt=$(max_of "${PT[@]}")
prow best "$(fmt "$bp64")" "$(fmt "$bp256")" "$(fmt "$bpw1")" "$(fmt "$bpw2")" "$(fmt "$bpt")"
prow median "$(fmt "$(median_of "${P64[@]}")")" "$(fmt "$(median_of "${P256[@]}")")" \
    "$(fmt "$(median_of "${PW1[@]}")")" "$(fmt "$(median_of "${PW2[@]}")")" \
    "$(fmt "$(median_of "${PT[@]}")")"
# The reference is raw at its faster batch size in these runs.
bpraw=$bp64 rawform="batch=64"
[ "$bp256" -le "$bp64" ] || bpraw=$bp256 rawform="batch=256"
echo "sluice process lane records/s: $bpw1 (workers=1), $bpw2 (workers=2)"
echo "raw ipc records/s: $bpraw ($rawform, transform in a separate process)"
awk -v s="$bpw1" -v s2="$bpw2" -v r="$bpraw" 'BEGIN {
    v = (r > 0 ? s / r : 0)
    printf "process ratio: %.2f (sluice process lane workers=1 / raw ipc); %.2f with workers=2; %s the 0.50 target\n",
        v, (r > 0 ? s2 / r : 0), (v >= 0.50 ? "meets" : "BELOW") }'
awk -v p="$bpw1" -v t="$bpt" -v cp="$(median_of "${CPW1[@]}")" \
    -v ct="$(median_of "${CPT[@]}")" 'BEGIN {
    printf "lane cost: process lane (workers=1) at %.2f of the thread lane records/s;" \
        " CPU per record %.2fx (%.2f vs %.2f us, medians)\n",
        (t > 0 ? p / t : 0), (ct > 0 ? cp / ct : 0), cp, ct }'
for i in $(seq "$REPS"); do
    if [ "${PW1[$((i - 1))]}" != "$bpw1" ] || [ ! -s "$TMP/process1-$i.json" ]; then
        continue
    fi
    for st in gen set sink; do
        printf '   %-5s busy %6ss  max_queue %s\n' "$st" \
            "$(json_num "$TMP/process1-$i.json" busy_s "$st")" \
            "$(json_num "$TMP/process1-$i.json" max_queue "$st")"
    done
    break
done

echo

# ---- 5. the cost of metrics -------------------------------------------------

# The counters and histograms behind the metrics are always kept; serving
# them costs only when scraped. A scraper (one python3 process, started
# once) fetches /metrics every 100 ms, ten times the usual Prometheus rate.
echo "== metrics: the throughput pipeline with --metrics, scraped every 100 ms, vs without"
cat >"$TMP/scrape.py" <<'PY'
import os, re, sys, time, urllib.request
log, stop = sys.argv[1], sys.argv[2]
url, n = None, 0
for _ in range(400):
    try:
        m = re.search(r"http://127\.0\.0\.1:\d+/metrics", open(log).read())
    except OSError:
        m = None
    if m:
        url = m.group(0)
        break
    time.sleep(0.025)
while url and not os.path.exists(stop):
    try:
        urllib.request.urlopen(url, timeout=2).read()
        n += 1
    except Exception:
        break
    time.sleep(0.1)
print(n)
PY
mrow() { printf '   %-6s %22s %22s %10s\n' "$@"; }
mrow run "without" "--metrics, scraped" scrapes
MW=() MS=()
for i in $(seq "$REPS"); do
    read -r r c < <(run_sluice "$TMP/pipeline.yaml" "$TMP/nometrics-$i.json" sink "$N")
    MW+=("$r")
    rm -f "$TMP/stop-scrape" "$TMP/sluice.out"
    python3 "$TMP/scrape.py" "$TMP/sluice.out" "$TMP/stop-scrape" >"$TMP/scrapes" &
    sp=$!
    read -r r2 c2 < <(SLUICE_ARGS="--metrics 127.0.0.1:0" run_sluice \
        "$TMP/pipeline.yaml" "$TMP/metrics-$i.json" sink "$N")
    touch "$TMP/stop-scrape"
    wait "$sp" 2>/dev/null || true
    MS+=("$r2")
    mrow "$i" "$(cell "$r" "$c")" "$(cell "$r2" "$c2")" "$(cat "$TMP/scrapes")"
done
bmw=$(max_of "${MW[@]}")
bms=$(max_of "${MS[@]}")
mrow best "$(fmt "$bmw")" "$(fmt "$bms")" ""
awk -v a="$bmw" -v b="$bms" 'BEGIN {
    printf "metrics cost: scraped at %.2f of the throughput without a server (target >= 0.95)\n",
        (a > 0 ? b / a : 0) }'

echo

# ---- 6. two nodes over tcp ----------------------------------------------------
# A topology across two `sluice run --node` processes on this machine, over
# CURVE-encrypted tcp, against raw_zmq over tcp; the script checks and
# prints its own table, with the same counts and repetitions as above.
if ! timeout "$((LIMIT * 3))" bash "$ROOT/bench/multinode.sh" --count "$N" \
    --reps "$REPS" "$BUILD"; then
    fail "bench/multinode.sh failed"
fi
echo

# ---- 7. the stage library and the replayer -------------------------------------
# Each script runs and checks its own pipeline and prints its numbers; a
# non-zero exit means a wrong result (or a missing server binary).
for script in access_logs pg_rows replay_rate; do
    echo "== $script (bench/$script.sh)"
    if ! timeout "$((LIMIT * 3))" bash "$ROOT/bench/$script.sh" "$BUILD" 2>&1 |
        sed 's/^/   /'; then
        fail "bench/$script.sh failed"
    fi
    echo
done

if [ ! -s "$TMP/failures" ]; then
    echo "all runs correct"
    exit 0
fi
echo "SOME RUNS WERE WRONG:"
cat "$TMP/failures"
exit 1
