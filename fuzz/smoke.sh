#!/usr/bin/env bash
# Runs every fuzz target for a while on its seed corpus, two at a time.
#
#   fuzz/smoke.sh BUILD_DIR [SECONDS]
#
# BUILD_DIR is a tree configured with -DSLUICE_FUZZ=ON and built (target
# `fuzz`). Each target fuzzes for SECONDS (default 60) on a copy of
# fuzz/corpus/<target>/ in a temporary folder, with the inputs saved under
# fuzz/regressions/<target>/ run first and mutated too. FUZZ_TARGETS="a b"
# runs only those targets; FUZZ_JOBS (default 2) how many at once;
# FUZZ_WORK=DIR works in DIR instead of a temporary folder and keeps it, so
# that a later run goes on from the corpus it grew; FUZZ_ARGS adds libFuzzer
# flags (say "-fork=1 -ignore_ooms=1" to fuzz on past a known failure).
#
# Exit status 0 when no target failed. Otherwise 1, with the path of each
# input that crashed, leaked, ran out of memory or timed out; that folder
# is kept, the others are removed (unless FUZZ_WORK is set).
set -u

usage() {
    echo "usage: $0 BUILD_DIR [SECONDS]" >&2
    exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
build=$(cd "$1" 2>/dev/null && pwd) || { echo "smoke: no folder $1" >&2; exit 2; }
seconds=${2:-60}
case $seconds in '' | *[!0-9]*) usage ;; esac
here=$(cd "$(dirname "$0")" && pwd)
jobs=${FUZZ_JOBS:-2}

# Per input: 10 s of run time, 2 GiB of memory; two targets at once stay
# within what a small CI machine has.
timeout_s=10
rss_mb=2048

targets=${FUZZ_TARGETS:-}
if [ -z "$targets" ]; then
    for src in "$here"/*.c; do
        targets="$targets $(basename "$src" .c)"
    done
fi
for t in $targets; do
    if [ ! -x "$build/fuzz/fuzz_$t" ]; then
        echo "smoke: $build/fuzz/fuzz_$t is missing (configure with" \
             "-DSLUICE_FUZZ=ON and build the target 'fuzz')" >&2
        exit 2
    fi
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
    export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
fi

if [ -n "${FUZZ_WORK:-}" ]; then
    mkdir -p "$FUZZ_WORK" && work=$(cd "$FUZZ_WORK" && pwd) || exit 2
    keep=1
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz-smoke.XXXXXX") || exit 2
    keep=0
fi
art=artifacts-$(date +%Y%m%d-%H%M%S)
declare -A pid_of=()
declare -A target_of=()
failed=""

run_one() {
    local t=$1 dir=$work/$1
    mkdir -p "$dir/corpus" "$dir/$art"
    cp -R -n "$here/corpus/$t/." "$dir/corpus/" 2>/dev/null
    local args=(-max_total_time="$seconds" -timeout="$timeout_s"
                -rss_limit_mb="$rss_mb" -print_final_stats=1
                -artifact_prefix="$dir/$art/")
    [ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
    # shellcheck disable=SC2206
    args+=(${FUZZ_ARGS:-})
    local dirs=("$dir/corpus")
    [ -d "$here/regressions/$t" ] && dirs+=("$here/regressions/$t")
    # The targets work in their own folder, so nothing lands in the tree.
    (cd "$dir" && exec timeout -k 10 $((seconds + 120)) \
        "$build/fuzz/fuzz_$t" "${args[@]}" "${dirs[@]}") >"$dir/log" 2>&1
}

report() {
    local t=$1 rc=$2 dir=$work/$1
    local stats
    stats=$(grep -E '^#[0-9]+.*cov: ' "$dir/log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "smoke: $t ok: ${stats:-no stats}"
        return
    fi
    failed="$failed $t"
    echo "smoke: $t FAILED (exit $rc): ${stats:-no stats}" >&2
    grep -E 'ERROR: |SUMMARY: |fuzz check failed|runtime error' "$dir/log" |
        head -n 5 | sed 's/^/smoke:   /' >&2
    local found=0 a
    for a in "$dir/$art"/*; do
        [ -e "$a" ] || continue
        echo "smoke:   input: $a" >&2
        found=1
    done
    if [ $found -eq 0 ]; then
        grep -E 'Test unit written to|Running: ' "$dir/log" | tail -n 1 |
            sed 's/^/smoke:   /' >&2
    fi
    echo "smoke:   log: $dir/log" >&2
}

for t in $targets; do
    while [ ${#pid_of[@]} -ge "$jobs" ]; do
        done_pid=""
        wait -n -p done_pid "${pid_of[@]}"
        rc=$?
        t_done=${target_of[$done_pid]}
        unset "pid_of[$t_done]"
        report "$t_done" "$rc"
    done
    run_one "$t" &
    pid_of[$t]=$!
    target_of[$!]=$t
    echo "smoke: $t started (${seconds}s)"
done
while [ ${#pid_of[@]} -gt 0 ]; do
    done_pid=""
    wait -n -p done_pid "${pid_of[@]}"
    rc=$?
    t_done=${target_of[$done_pid]}
    unset "pid_of[$t_done]"
    report "$t_done" "$rc"
done

if [ -n "$failed" ]; then
    [ $keep -eq 1 ] || for t in $targets; do
        case " $failed " in *" $t "*) ;; *) rm -rf "${work:?}/$t" ;; esac
    done
    echo "smoke: failed:$failed (inputs and logs under $work)" >&2
    exit 1
fi
[ $keep -eq 1 ] || rm -rf "$work"
echo "smoke: all targets passed ${seconds}s each"
