#!/usr/bin/env bash
# The access log example at scale, and the SQLite sink on its own.
#
#   bench/access_logs.sh [--lines N] BUILD_DIR
#
# 1. Writes a combined-format access log of N lines (default 1,000,000;
#    topologies/data/gen_access_log.awk, deterministic: ten hours of a
#    busy server, one line in 250 malformed) and runs a copy of
#    topologies/access_logs.yaml on it (file_source -> regex_parse ->
#    lua -> window -> sqlite_sink). records/s = lines read / elapsed.
# 2. generator -> sqlite_sink, 500,000 rows (plain inserts, one
#    transaction per 1000 rows). rows/s = rows written / elapsed.
#
# Prints `access_logs records/s: N` and `sqlite_sink rows/s: N`. Exit 0 when
# both runs were correct (ledger balanced, every line read, the dead
# letters and table rows as expected), 1 when one was not, 2 on a usage or
# setup problem. SLUICE_BENCH_LIMIT (seconds, default 300) bounds each run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LINES=1000000
ROWS=500000
BUILD=

usage() {
    echo "usage: $0 [--lines N] BUILD_DIR" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --lines)
        [ $# -ge 2 ] || usage
        LINES=$2
        shift
        ;;
    -*) usage ;;
    *)
        [ -z "$BUILD" ] || usage
        BUILD=$1
        ;;
    esac
    shift
done
[ -n "$BUILD" ] || usage
case $LINES in '' | *[!0-9]* | 0) usage ;; esac
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
    echo "access_logs: no build folder" >&2
    exit 2
}
SLUICE=$BUILD/tools/sluice
[ -x "$SLUICE" ] || {
    echo "access_logs: $SLUICE is missing: build first (make build)" >&2
    exit 2
}
export SLUICE_PLUGIN_PATH=$BUILD/stages
LIMIT=${SLUICE_BENCH_LIMIT:-300}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-access.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILED=0
fail() {
    echo "access_logs: FAILED: $*" >&2
    FAILED=1
}

# json_num FILE KEY [STAGE]: the first number under "KEY" in a report,
# within the named stage's object if STAGE is given (as run_bench.sh).
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
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? a / b : 0) }'; }

# run YAML REPORT: runs a topology; 0 if it ended cleanly with a report.
run() {
    local rc=0
    timeout -k 10 "$LIMIT" "$SLUICE" run "$1" --report "$2" --quiet \
        >"$TMP/run.out" 2>&1 || rc=$?
    if [ "$rc" != 0 ] || [ ! -s "$2" ]; then
        fail "sluice run $1 exited $rc: $(tail -n 5 "$TMP/run.out")"
        return 1
    fi
    grep -q '"ledger_ok":true' "$2" || fail "$1: ledger not balanced"
}

# ---- 1. the access log topology ------------------------------------------------

echo "== access logs: file_source -> regex_parse (combined) -> lua -> window (1m) -> sqlite_sink"
awk -v n="$LINES" -v seed=11 -v start=1700000000 -v span=36000 \
    -f "$ROOT/topologies/data/gen_access_log.awk" >"$TMP/access.log"
bad=$((LINES / 250))
echo "   input: $LINES lines ($bad malformed), $(wc -c <"$TMP/access.log") bytes"
sed -e "s#path: data/access.log#path: $TMP/access.log#" \
    -e "s#script: scripts/enrich_access.lua#script: $ROOT/topologies/scripts/enrich_access.lua#" \
    -e "s#out/#$TMP/#" \
    "$ROOT/topologies/access_logs.yaml" >"$TMP/access_logs.yaml"
grep -q "$TMP/access.log" "$TMP/access_logs.yaml" || {
    echo "access_logs: topologies/access_logs.yaml has no 'path: data/access.log'" >&2
    exit 2
}
rate=0
if run "$TMP/access_logs.yaml" "$TMP/access.json"; then
    read_n=$(json_num "$TMP/access.json" read read)
    elapsed=$(json_num "$TMP/access.json" elapsed_s)
    dead=$(json_num "$TMP/access.json" dead_lettered parse)
    [ "$read_n" = "$LINES" ] || fail "read $read_n lines, expected $LINES"
    [ "$dead" = "$bad" ] || fail "parse dead-lettered $dead lines, expected $bad"
    rows=$(json_num "$TMP/access.json" in store)
    [ "${rows:-0}" -gt 0 ] || fail "no rows reached the table"
    rate=$(div "$read_n" "$elapsed")
    echo "   $(printf '%.2f' "$elapsed") s, $rows rows into per_minute"
    for st in read parse enrich per_minute store; do
        printf '   %-11s busy %6ss  max_queue %s\n' "$st" \
            "$(json_num "$TMP/access.json" busy_s "$st")" \
            "$(json_num "$TMP/access.json" max_queue "$st")"
    done
fi
echo "access_logs records/s: $rate"
echo

# ---- 2. sqlite_sink on its own -------------------------------------------------------

echo "== sqlite_sink: generator -> sqlite_sink, $ROWS rows (insert, batch_rows 1000)"
cat >"$TMP/sqlite.yaml" <<YAML
name: bench-sqlite
stages:
  - name: gen
    plugin: generator
    config: {count: $ROWS}
  - name: store
    plugin: sqlite_sink
    config:
      path: $TMP/bench.db
      table: records
      columns:
        seq: integer
        ts: integer
        user: text
        amount: real
        country: text
        msg: text
YAML
rate=0
if run "$TMP/sqlite.yaml" "$TMP/sqlite.json"; then
    in=$(json_num "$TMP/sqlite.json" in store)
    elapsed=$(json_num "$TMP/sqlite.json" elapsed_s)
    [ "$in" = "$ROWS" ] || fail "sqlite_sink got ${in:-?} rows, expected $ROWS"
    [ "$(json_num "$TMP/sqlite.json" dead_lettered store)" = 0 ] ||
        fail "sqlite_sink dead-lettered rows"
    rate=$(div "${in:-0}" "$elapsed")
    echo "   $(printf '%.2f' "$elapsed") s"
fi
echo "sqlite_sink rows/s: $rate"
exit "$FAILED"
