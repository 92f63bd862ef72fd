#!/usr/bin/env bash
# Soak test: runs a topology for a long time under load and worker kills,
# samples the resources of the sluice process once a second, and fails on
# growth or on a ledger that does not balance. docs/testing.md ("Soak")
# describes what it does, its bounds and why; `make soak` runs it for 10
# minutes, tests/integration/test_soak.c for 60 s.
#
#   scripts/soak.sh [BUILD_DIR]          (default: build)
#
# Environment (defaults in brackets):
#   SOAK_SECONDS   length of the run before SIGTERM [600]
#   SOAK_TOPOLOGY  the topology to run [topologies/soak.yaml]; it is copied
#                  into a temporary folder and run there
#   SOAK_RATE      replaces the generator's `rate:` line [the file's]
#   SOAK_KILL_MIN, SOAK_KILL_MAX
#                  seconds between two worker kills, drawn uniformly [1, 3]
#   SOAK_SEED      seed of the kill schedule [the process id]
#   SOAK_WARMUP    seconds of samples left out of the growth checks
#                  [max(10, SOAK_SECONDS / 6)]
#   SOAK_EVERY     seconds per row of the printed table
#                  [max(1, SOAK_SECONDS / 40)]
#   SOAK_RSS_PCT, SOAK_RSS_MIB
#                  allowed growth of the sluice process's RSS [10, 8]
#   SOAK_WRSS_PCT, SOAK_WRSS_MIB
#                  allowed growth of the workers' summed RSS [20, 16]
#   SOAK_FD_SLACK, SOAK_THREAD_SLACK
#                  allowed growth of open fds and threads [2, 1]
#   SOAK_SIGHUP    1: send SIGHUP once, half-way, and require the run to
#                  survive it (sluice has no reload: it logs and goes on) [1]
#   SOAK_KEEP      1: keep the temporary folder (output, log, samples) [0]
#
# Exit status: 0 pass, 1 a check failed, 2 bad usage or setup.

set -u

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=$BUILD/tools/sluice
case $SLUICE in /*) ;; *) SLUICE=$PWD/$SLUICE ;; esac

SECS=${SOAK_SECONDS:-600}
TOPO=${SOAK_TOPOLOGY:-$ROOT/topologies/soak.yaml}
KMIN=${SOAK_KILL_MIN:-1}
KMAX=${SOAK_KILL_MAX:-3}
SEED=${SOAK_SEED:-$$}
RSS_PCT=${SOAK_RSS_PCT:-10}
RSS_MIB=${SOAK_RSS_MIB:-8}
WRSS_PCT=${SOAK_WRSS_PCT:-20}
WRSS_MIB=${SOAK_WRSS_MIB:-16}
FD_SLACK=${SOAK_FD_SLACK:-2}
THR_SLACK=${SOAK_THREAD_SLACK:-1}
SIGHUP_AT=0

die() { echo "soak: $*" >&2; exit 2; }

isnum() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
for v in "$SECS" "$KMIN" "$KMAX" "$SEED" "$RSS_PCT" "$RSS_MIB" \
         "$WRSS_PCT" "$WRSS_MIB" "$FD_SLACK" "$THR_SLACK"; do
    isnum "$v" || die "expected a whole number, got '$v' (see the header of $0)"
done
[ "$SECS" -ge 30 ] || die "SOAK_SECONDS must be at least 30, got $SECS"
if [ "$KMIN" -lt 1 ] || [ "$KMAX" -lt "$KMIN" ]; then
    die "need 1 <= SOAK_KILL_MIN <= SOAK_KILL_MAX, got $KMIN and $KMAX"
fi
WARMUP=${SOAK_WARMUP:-$(( SECS / 6 > 10 ? SECS / 6 : 10 ))}
EVERY=${SOAK_EVERY:-$(( SECS / 40 > 1 ? SECS / 40 : 1 ))}
if ! isnum "$WARMUP" || ! isnum "$EVERY" || [ "$EVERY" -lt 1 ]; then
    die "SOAK_WARMUP and SOAK_EVERY must be whole numbers (SOAK_EVERY >= 1)"
fi
[ $(( SECS - WARMUP )) -ge 15 ] ||
    die "SOAK_WARMUP ($WARMUP) leaves under 15 s of samples in $SECS s"
[ "${SOAK_SIGHUP:-1}" = 1 ] && SIGHUP_AT=$(( SECS / 2 ))

[ -x "$SLUICE" ] || die "no sluice at $SLUICE: build first (make build) or pass the build folder"
[ -r "$TOPO" ] || die "cannot read the topology $TOPO"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-soak.XXXXXX") || die "mktemp failed"
PID=
# shellcheck disable=SC2317  # reached through the trap
cleanup() {
    trap - EXIT INT TERM HUP
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null   # its workers die with it (PDEATHSIG)
        wait "$PID" 2>/dev/null
    fi
    if [ "${SOAK_KEEP:-0}" = 1 ]; then
        echo "soak: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM HUP

cp "$TOPO" "$TMP/soak.yaml" || die "cannot copy $TOPO"
if [ -n "${SOAK_RATE:-}" ]; then
    isnum "$SOAK_RATE" || die "SOAK_RATE must be a whole number, got '$SOAK_RATE'"
    sed -i "s/^\( *rate:\).*/\1 $SOAK_RATE/" "$TMP/soak.yaml"
fi
"$SLUICE" check "$TMP/soak.yaml" >/dev/null 2>"$TMP/check.log" ||
    die "the topology does not load: $(cat "$TMP/check.log")"

# ---- the run ---------------------------------------------------------------

# setpriv ties sluice to this script: if the script is killed (even with
# SIGKILL) sluice goes too, and its workers with it.
PDEATH=()
command -v setpriv >/dev/null && PDEATH=(setpriv --pdeathsig KILL --)
cd "$TMP" || die "cannot enter $TMP"
"${PDEATH[@]}" "$SLUICE" run soak.yaml --report report.json >run.log 2>&1 &
PID=$!

# Sets RSS (KiB) and THR from /proc/$1/status; 1 if the process is gone.
# The file is taken in one read: reading it line by line lets bash seek
# back after each line, and the kernel then renders it anew, so a line
# can go missing when a number before it changed width.
proc_status() {
    RSS=0 THR=0
    local txt=
    IFS= read -r -d '' txt 2>/dev/null <"/proc/$1/status"
    [[ $txt =~ VmRSS:[[:space:]]*([0-9]+) ]] && RSS=${BASH_REMATCH[1]}
    [[ $txt =~ Threads:[[:space:]]*([0-9]+) ]] && THR=${BASH_REMATCH[1]}
    [ "$RSS" != 0 ]
}

# Sets WORKERS to the worker processes of $PID ("pid:stage-index" each).
list_workers() {
    WORKERS=()
    local c arg ep kids=() f
    for f in /proc/"$PID"/task/*/children; do
        c=()
        read -r -a c 2>/dev/null <"$f"  # no newline at the end: status 1
        kids+=("${c[@]}")
    done
    for c in "${kids[@]}"; do
        { IFS= read -r -d '' _; IFS= read -r -d '' arg;
          IFS= read -r -d '' ep; } 2>/dev/null <"/proc/$c/cmdline"
        [ "$arg" = __worker ] && WORKERS+=("$c:${ep##*-}")
        arg=
    done
}

# Milliseconds on the wall clock (no fork; the radix follows the locale).
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $(( t / 1000 )); }

RANDOM=$SEED
next_kill=$(( 2 + KMIN + RANDOM % (KMAX - KMIN + 1) ))
kills=0
declare -A kills_by=()
printf '%s\n' "t rss_kib fds threads workers wrss_kib kills sink" >"$TMP/samples"
echo "soak: $SECS s of ${TOPO#"$ROOT"/} (seed $SEED), sampling pid $PID every second"

start=$(now_ms)
t=0
failed_early=
while [ "$t" -lt "$SECS" ]; do
    t=$(( t + 1 ))
    wait_ms=$(( start + t * 1000 - $(now_ms) ))
    [ "$wait_ms" -gt 0 ] && sleep "$(printf '%d.%03d' $(( wait_ms / 1000 )) $(( wait_ms % 1000 )))"
    sampled=1
    if ! proc_status "$PID"; then
        state=
        read -r _ _ state _ 2>/dev/null <"/proc/$PID/stat"
        if [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ]; then
            failed_early="sluice ended after $t s, before SIGTERM"
            [ "$SIGHUP_AT" -gt 0 ] && [ "$t" -gt "$SIGHUP_AT" ] &&
                failed_early="$failed_early: SIGHUP at t=$SIGHUP_AT s ended it"
            break
        fi
        echo "soak: t=$t s: no VmRSS in /proc/$PID/status (state $state); no sample" >&2
        sampled=0
    fi
    rss=$RSS thr=$THR
    fds=(/proc/"$PID"/fd/*)
    list_workers
    wrss=0
    for w in "${WORKERS[@]}"; do
        proc_status "${w%%:*}" && wrss=$(( wrss + RSS ))
    done
    sink=-
    if [ $(( t % EVERY )) = 0 ]; then
        sink=$(wc -l <soak.jsonl 2>/dev/null || echo 0)
        sink=${sink// /}
    fi
    [ "$sampled" = 1 ] &&
        echo "$t $rss ${#fds[@]} $thr ${#WORKERS[@]} $wrss $kills $sink" >>"$TMP/samples"

    if [ "$t" = "$SIGHUP_AT" ]; then
        echo "soak: t=$t s: SIGHUP"
        kill -HUP "$PID"
    fi
    if [ "$t" -ge "$next_kill" ] && [ "$t" -lt $(( SECS - 1 )) ] &&
       [ "${#WORKERS[@]}" -gt 0 ]; then
        w=${WORKERS[RANDOM % ${#WORKERS[@]}]}
        if kill -KILL "${w%%:*}" 2>/dev/null; then
            kills=$(( kills + 1 ))
            kills_by[${w##*:}]=$(( ${kills_by[${w##*:}]:-0} + 1 ))
        fi
        next_kill=$(( t + KMIN + RANDOM % (KMAX - KMIN + 1) ))
    fi
done

# ---- the end: drain, then the checks ---------------------------------------

code=
if [ -z "$failed_early" ]; then
    kill -TERM "$PID"
    deadline=$(( $(now_ms) + 120000 ))
    while kill -0 "$PID" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.1
    done
    if kill -0 "$PID" 2>/dev/null; then
        failed_early="sluice did not end within 120 s of SIGTERM"
    fi
fi
killed=
if kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID"
    killed=" (SIGKILL from the soak)"
fi
wait "$PID"
code=$?
PID=
[ -z "$killed" ] && [ "$code" -gt 128 ] &&
    killed=" (signal $(( code - 128 )), not sent by the soak)"

failures=()
[ -n "$failed_early" ] && failures+=("$failed_early")
[ "$code" = 0 ] || failures+=("sluice run exited $code$killed, not 0")

# The series and the growth checks.
awk -v warm="$WARMUP" -v every="$EVERY" \
    -v rpct="$RSS_PCT" -v rmib="$RSS_MIB" -v wpct="$WRSS_PCT" -v wmib="$WRSS_MIB" \
    -v fdslack="$FD_SLACK" -v thrslack="$THR_SLACK" '
function mib(k) { return k / 1024 }
function flush_row() {
    if (!rows) return
    printf "%5d %-5s %9.1f %5d %7d %7d %10.1f %6d %10s\n", t0, ph, mib(mr), mf, mt,
           mw, mib(mwr), kl, sk
    rows = 0
}
NR == 1 { next }
{
    n++; T[n] = $1; R[n] = $2; F[n] = $3; H[n] = $4; W[n] = $5; WR[n] = $6
    K[n] = $7; S[n] = $8
}
END {
    if (n == 0) { print "soak: no samples"; print "GROWTH no samples"; exit }
    for (a1 = 1; a1 <= n && T[a1] <= warm; a1++) ;
    third = int((n - a1 + 1) / 3)
    if (third < 1) { print "GROWTH too few samples after the warm-up"; exit }
    b1 = a1 + third - 1; a3 = n - third + 1; b3 = n
    printf "%5s %-5s %9s %5s %7s %7s %10s %6s %10s\n", "t s", "phase", "rss MiB",
           "fds", "threads", "workers", "wrss MiB", "kills", "sink recs"
    for (i = 1; i <= n; i++) {
        p = i < a1 ? "warm" : i <= b1 ? "first" : i >= a3 ? "last" : "mid"
        if (rows && (p != ph || (T[i] - 1) % every == 0)) flush_row()
        if (!rows) { ph = p; mr = mf = mt = mw = mwr = 0 }
        rows++; t0 = T[i]; kl = K[i]; sk = S[i]
        if (R[i] > mr) mr = R[i]; if (F[i] > mf) mf = F[i]
        if (H[i] > mt) mt = H[i]; if (W[i] > mw) mw = W[i]
        if (WR[i] > mwr) mwr = WR[i]
    }
    flush_row()
    for (i = a1; i <= b1; i++) {
        if (R[i] > r1) r1 = R[i]; if (F[i] > f1) f1 = F[i]
        if (H[i] > h1) h1 = H[i]; if (WR[i] > w1) w1 = WR[i]
    }
    for (i = a3; i <= b3; i++) {
        if (R[i] > r3) r3 = R[i]; if (F[i] > f3) f3 = F[i]
        if (H[i] > h3) h3 = H[i]; if (WR[i] > w3) w3 = WR[i]
    }
    printf "\nbounds: warm-up %d s; first third t=%d..%d s, last third t=%d..%d s (max of each)\n",
           warm, T[a1], T[b1], T[a3], T[b3]
    rl = r1 * (1 + rpct / 100) + rmib * 1024
    wl = w1 * (1 + wpct / 100) + wmib * 1024
    printf "  sluice RSS  %8.1f -> %8.1f MiB  limit %8.1f MiB (+%d%% +%d MiB)  %s\n",
           mib(r1), mib(r3), mib(rl), rpct, rmib, r3 <= rl ? "ok" : "GROWS"
    printf "  worker RSS  %8.1f -> %8.1f MiB  limit %8.1f MiB (+%d%% +%d MiB)  %s\n",
           mib(w1), mib(w3), mib(wl), wpct, wmib, w3 <= wl ? "ok" : "GROWS"
    printf "  open fds    %8d -> %8d      limit %8d     (+%d)            %s\n",
           f1, f3, f1 + fdslack, fdslack, f3 <= f1 + fdslack ? "ok" : "GROWS"
    printf "  threads     %8d -> %8d      limit %8d     (+%d)            %s\n",
           h1, h3, h1 + thrslack, thrslack, h3 <= h1 + thrslack ? "ok" : "GROWS"
    if (r3 > rl)
        printf "GROWTH sluice RSS grew from %.1f to %.1f MiB (limit %.1f)\n", mib(r1), mib(r3), mib(rl)
    if (w3 > wl)
        printf "GROWTH worker RSS grew from %.1f to %.1f MiB (limit %.1f)\n", mib(w1), mib(w3), mib(wl)
    if (f3 > f1 + fdslack) print "GROWTH open fds grew from " f1 " to " f3 " (limit " f1 + fdslack ")"
    if (h3 > h1 + thrslack) print "GROWTH threads grew from " h1 " to " h3 " (limit " h1 + thrslack ")"
}' "$TMP/samples" >"$TMP/series"
grep -v '^GROWTH ' "$TMP/series"
while IFS= read -r line; do
    failures+=("${line#GROWTH }")
done < <(grep '^GROWTH ' "$TMP/series")

# The run's own account: its summary, then its report.
echo
echo "run summary:"
sed -n '/^stage  /,$p' run.log | sed 's/^/  /'
grep -q 'ledger balanced' run.log || failures+=("the run did not print 'ledger balanced'")
if [ "$SIGHUP_AT" -gt 0 ] && ! grep -q 'SIGHUP ignored: sluice does not reload' run.log; then
    failures+=("the run did not answer the SIGHUP in its log")
fi

# One line per stage, "name key=value ...", and a line for the totals.
report_lines() {
    awk '
    function num(s, k,    m) {
        if (match(s, "\"" k "\":-?[0-9.]+")) {
            m = substr(s, RSTART, RLENGTH); sub(/^"[^"]*":/, "", m); return m
        }
        return "?"
    }
    function str(s, k,    m) {
        if (match(s, "\"" k "\":(true|false|\"[^\"]*\")")) {
            m = substr(s, RSTART, RLENGTH); sub(/^"[^"]*":/, "", m)
            gsub(/"/, "", m); return m
        }
        return "?"
    }
    {
        n = split($0, part, /\{"name":/)
        t = part[1]
        sub(/.*"totals":/, "", t)
        printf "totals ledger_ok=%s failed=%s", str(part[1], "ledger_ok"), str(part[1], "failed")
        split("read delivered filtered dead_lettered retried spilled shed lost", keys, " ")
        for (j = 1; j <= 8; j++) printf " %s=%s", keys[j], num(t, keys[j])
        printf "\n"
        split("read in out delivered dead_lettered retried restarts redelivered", keys, " ")
        for (i = 2; i <= n; i++) {
            s = "{\"name\":" part[i]
            printf "%s", str(s, "name")
            for (j = 1; j <= 8; j++) printf " %s=%s", keys[j], num(s, keys[j])
            printf "\n"
        }
    }' <(tr -d '\n' <report.json)
}

if [ -s report.json ]; then
    report_lines >report.txt
    declare -A tot=()
    # shellcheck disable=SC2013  # key=value words, not lines
    for kv in $(sed -n 's/^totals //p' report.txt); do tot[${kv%%=*}]=${kv#*=}; done
    [ "${tot[ledger_ok]:-}" = true ] || failures+=("report: ledger_ok is ${tot[ledger_ok]:-missing}")
    [ "${tot[failed]:-}" = false ] || failures+=("report: failed is ${tot[failed]:-missing}")
    for k in lost dead_lettered spilled shed filtered; do
        [ "${tot[$k]:-}" = 0 ] || failures+=("report: totals.$k is ${tot[$k]:-missing}, not 0")
    done
    [ "${tot[read]:-x}" = "${tot[delivered]:-y}" ] ||
        failures+=("report: ${tot[read]:-?} read but ${tot[delivered]:-?} delivered")

    # Restarts per stage against the kills sent to that stage's workers
    # (a worker's endpoint ends in its stage's index in the topology).
    restarts=0 redelivered=0 retried=0 idx=0
    while read -r name kvs; do
        [ "$name" = totals ] && continue
        declare -A st=()
        for kv in $kvs; do st[${kv%%=*}]=${kv#*=}; done
        r=${st[restarts]:-0} want=${kills_by[$idx]:-0}
        restarts=$(( restarts + r ))
        redelivered=$(( redelivered + ${st[redelivered]:-0} ))
        retried=$(( retried + ${st[retried]:-0} ))
        [ "$r" = "$want" ] ||
            failures+=("stage $name: $r worker restarts in the report, $want workers killed")
        unset st
        idx=$(( idx + 1 ))
    done <report.txt
    echo
    echo "ledger: ${tot[read]} read, ${tot[delivered]} delivered, lost ${tot[lost]}," \
         "dead-lettered ${tot[dead_lettered]}, spilled ${tot[spilled]};" \
         "$kills workers killed, $restarts restarts, $redelivered records" \
         "handled again (redelivered), $retried retried"
    [ "$kills" -gt 0 ] || failures+=("no worker was killed: the run had no process-lane workers to kill")

    # Every record the source read reached the file exactly once.
    lines=$(wc -l <soak.jsonl 2>/dev/null || echo 0)
    lines=${lines// /}
    sed -n 's/^{"seq":\([0-9]*\),.*/\1/p' soak.jsonl | sort -n >seqs
    # seqs is sorted: a duplicate repeats the line before it, and distinct
    # seqs from 0 leave no gap when the last one is their count minus one.
    read -r nseq dups last <<<"$(awk '
        NR > 1 && $1 == prev { d++ } { prev = $1 }
        END { printf "%d %d %d", NR, d, NR ? prev : -1 }' seqs)"
    missing=$(( last + 1 - (nseq - dups) ))
    echo "sink: $lines lines in soak.jsonl; seq 0..$last: $dups duplicated, $missing missing"
    [ "$lines" = "${tot[read]}" ] ||
        failures+=("sink: $lines records in the file, ${tot[read]} read by the source")
    [ "$nseq" = "$lines" ] && [ "$dups" = 0 ] && [ "$missing" = 0 ] &&
        [ "$(head -n 1 seqs)" = 0 ] ||
        failures+=("sink: the seqs are not exactly 0..$(( lines - 1 )): $nseq lines with a seq, $dups duplicated, $missing missing, first $(head -n 1 seqs)")
else
    failures+=("no report.json was written")
fi

echo
if [ "${#failures[@]}" = 0 ]; then
    echo "soak: PASS ($SECS s, $kills workers killed, ${tot[read]} records)"
    exit 0
fi
echo "soak: FAIL"
for f in "${failures[@]}"; do echo "  - $f"; done
if [ "$code" != 0 ] || [ ! -s report.json ]; then
    echo "the end of the run's log:"
    tail -n 20 run.log | sed 's/^/  /'
fi
[ "${SOAK_KEEP:-0}" = 1 ] || echo "(SOAK_KEEP=1 keeps the run's folder: log, report, output)"
exit 1
