#!/usr/bin/env bash
# pg_sink throughput: generator -> pg_sink into a private PostgreSQL server.
#
#   bench/pg_rows.sh [--rows N] [--workers N] BUILD_DIR
#
# Starts a throwaway server (initdb in a temporary folder, on tmpfs when
# /dev/shm is there; 127.0.0.1 on a free port and a socket in the folder;
# as root its commands run as the `postgres` user), runs N records (200000)
# of the generator's default shape into a table of six columns, checks that
# the table holds exactly N distinct rows, and prints
#
#   pg_sink rows/s: N
#
# Exit status: 0 when the run was correct, 1 when it was not (exit code,
# row count), 2 on a usage or setup problem (PostgreSQL not installed, no
# build). The server and its folder are removed at exit, whatever happens.
set -euo pipefail

ROWS=200000
WORKERS=1
BUILD=

usage() {
    echo "usage: $0 [--rows N] [--workers N] BUILD_DIR" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --rows | --workers)
        [ $# -ge 2 ] || usage
        case $2 in '' | *[!0-9]* | 0) usage ;; esac
        if [ "$1" = --rows ]; then ROWS=$2; else WORKERS=$2; fi
        shift
        ;;
    -h | --help | -*) usage ;;
    *)
        [ -z "$BUILD" ] || usage
        BUILD=$1
        ;;
    esac
    shift
done
[ -n "$BUILD" ] || usage
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
    echo "pg_rows: no build folder" >&2
    exit 2
}
SLUICE=$BUILD/tools/sluice
if [ ! -x "$SLUICE" ] || [ ! -f "$BUILD/stages/pg_sink.so" ]; then
    echo "pg_rows: $SLUICE or stages/pg_sink.so is missing: build first" >&2
    exit 2
fi
export SLUICE_PLUGIN_PATH=$BUILD/stages

PGBIN=${SL_PG_BINDIR:-}
if [ -z "$PGBIN" ]; then
    for v in 17 16 15 14 13; do
        if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then
            PGBIN=/usr/lib/postgresql/$v/bin
            break
        fi
    done
fi
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "pg_rows: PostgreSQL server programs not installed: install" \
        "Debian's postgresql package (scripts/deps.sh)" >&2
    exit 2
fi

# PostgreSQL refuses to run as root: its commands run as `postgres`.
AS=()
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        echo "pg_rows: running as root, and there is no 'postgres' user:" \
            "install Debian's postgresql package" >&2
        exit 2
    fi
    AS=(runuser -u postgres --)
fi

BASE=/tmp
[ -w /dev/shm ] && BASE=/dev/shm
TMP=$(mktemp -d "$BASE/sluice-pgbench.XXXXXX")
[ ${#AS[@]} -eq 0 ] || chown postgres "$TMP"
cleanup() {
    if [ -f "$TMP/data/postmaster.pid" ]; then
        "${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)

"${AS[@]}" "$PGBIN/initdb" -D "$TMP/data" -A trust -U postgres -N -E UTF8 \
    --locale=C >"$TMP/initdb.log" 2>&1 || {
    echo "pg_rows: initdb failed:" >&2
    cat "$TMP/initdb.log" >&2
    exit 2
}
# fsync stays on: the number should be what a real server costs, give or
# take the tmpfs.
cat >>"$TMP/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$TMP'
dynamic_shared_memory_type = mmap
EOF
"${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/server.log" -w -t 60 \
    start >/dev/null || {
    echo "pg_rows: the server did not start:" >&2
    cat "$TMP/server.log" >&2
    exit 2
}

cat >"$TMP/pg_rows.yaml" <<EOF
name: pg_rows
stages:
  - name: gen
    plugin: generator
    config: {count: $ROWS}
  - name: db
    plugin: pg_sink
    workers: $WORKERS
    config:
      conninfo_env: SLUICE_BENCH_PG
      table: bench
      batch_rows: 5000
      columns:
        seq: bigint
        ts: {type: timestamptz, unit: ns}
        user: text
        amount: double precision
        country: text
        msg: text
EOF

export SLUICE_BENCH_PG="host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable gssencmode=disable"
start=$(date +%s.%N)
if ! "$SLUICE" run "$TMP/pg_rows.yaml" --quiet --report "$TMP/report.json" \
    >"$TMP/run.log" 2>&1; then
    echo "pg_rows: FAILED: the run failed:" >&2
    cat "$TMP/run.log" >&2
    exit 1
fi
end=$(date +%s.%N)

got=$("$PGBIN/psql" -h "$TMP" -p "$PORT" -U postgres -d postgres -Atc \
    "SELECT count(*), count(DISTINCT seq) FROM bench")
if [ "$got" != "$ROWS|$ROWS" ]; then
    echo "pg_rows: FAILED: expected $ROWS distinct rows, got '$got'" >&2
    exit 1
fi
awk -v n="$ROWS" -v a="$start" -v b="$end" \
    'BEGIN { printf "pg_sink rows/s: %d\n", n / (b - a) }'
