#!/usr/bin/env bash
# Runs the plist reader's fuzz target: "make fuzz-run" (bounded, for CI) and
# "make fuzz-long" (a long run); see docs/fuzzing.md.  The Makefile builds
# the target first and passes the settings in the environment:
#
#   FUZZ_RUNS      executions of the bounded run
#   FUZZ_SECONDS   time budget of the long run
#   FUZZ_JOBS      parallel fuzzing processes of the long run
#   FUZZ_MAX_LEN   largest input the fuzzer generates
#   FUZZ_FLAGS     extra libFuzzer flags
#
# Every file of test/vectors/ is first run once in full, then copied into a
# scratch seed directory under test/fuzz/build/ (the committed vectors are
# never written to).  Exits non-zero on any crash, leak, timeout or
# invariant violation; crashing inputs are saved in test/fuzz/build/artifacts/.
set -euo pipefail

mode=${1:?usage: run.sh bounded|long}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/test/fuzz/build
bin=$build/fuzz_plist
artifacts=$build/artifacts/
seeds=$build/seeds

: "${FUZZ_RUNS:=300000}" "${FUZZ_SECONDS:=3600}" "${FUZZ_JOBS:=2}"
: "${FUZZ_MAX_LEN:=8192}" "${FUZZ_FLAGS:=}"

limits=(-rss_limit_mb=2048 -timeout=10 -detect_leaks=1)
fuzzing=("${limits[@]}" -print_final_stats=1 -max_len="$FUZZ_MAX_LEN"
         -dict="$root/test/fuzz/plist.dict" -artifact_prefix="$artifacts")

# Fresh copy of the vectors, one flat directory, names kept readable.
make_seeds() {
    local f rel
    rm -rf "$seeds"
    mkdir -p "$seeds" "$artifacts"
    while IFS= read -r -d '' f; do
        rel=${f#"$root/test/vectors/"}
        cp "$f" "$seeds/${rel//\//_}"
    done < <(find "$root/test/vectors" -type f -print0)
}

# Every vector once, in full (-max_len would truncate them).
replay_seeds() {
    local log=$build/replay.log n
    n=$(find "$seeds" -type f | wc -l)
    if ! "$bin" "${limits[@]}" "$seeds"/* >"$log" 2>&1; then
        # from the vector that failed on
        awk '/^Running: / { out = "" } { out = out $0 "\n" } END { printf "%s", out }' "$log"
        echo "fuzz: FAILED replaying the test vectors (log: $log)"
        exit 1
    fi
    echo "fuzz: replayed $n test vectors in full, no crash"
}

# Executions of one log: its "Done N runs" line, or after a crash its last
# "#N" status line.
runs_of() {
    sed -n -e 's/^Done \([0-9]*\) runs in .*/\1/p' -e 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$1" |
        tail -n 1 || true
}

# Print the executions and time of a run from its logs, and its outcome.
summarize() {
    local rc=$1
    shift
    local runs=0 secs log n
    for log in "$@"; do
        n=$(runs_of "$log")
        runs=$((runs + ${n:-0}))
    done
    secs=$(($(date +%s) - started))
    grep -h -E '^Done [0-9]+ runs' "$@" | sed 's/^/libFuzzer: /' || true
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $runs executions in ${secs} s, no crash, leak or timeout found"
        return 0
    fi
    grep -h -E '^==[0-9]+==|^==fuzz_plist==|^SUMMARY|Test unit written|^artifact_prefix' "$@" | head -40 || true
    echo "fuzz: FAILED after $runs executions (exit code $rc); inputs in $artifacts"
    echo "fuzz: reproduce with: $bin <artifact>; minimise with: $bin -minimize_crash=1 -runs=100000 <artifact>"
    return "$rc"
}

make_seeds
replay_seeds
started=$(date +%s)

case $mode in
bounded)
    corpus=$build/corpus-run
    log=$build/fuzz-run.log
    rm -rf "$corpus"
    mkdir -p "$corpus"
    rc=0
    "$bin" "${fuzzing[@]}" -runs="$FUZZ_RUNS" -max_total_time=120 $FUZZ_FLAGS \
        "$corpus" "$seeds" >"$log" 2>&1 || rc=$?
    summarize "$rc" "$log"
    ;;
long)
    # The corpus of long runs is kept, so that each one starts where the last stopped.
    corpus=$build/corpus-long
    logs=$build/long-logs
    rm -rf "$logs"
    mkdir -p "$corpus" "$logs"
    echo "fuzz: $FUZZ_JOBS processes for $FUZZ_SECONDS s; logs in $logs"
    rc=0
    (cd "$logs" &&
     "$bin" "${fuzzing[@]}" -jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS" \
         -max_total_time="$FUZZ_SECONDS" $FUZZ_FLAGS "$corpus" "$seeds" \
         >"$logs/main.log" 2>&1) || rc=$?
    # Any report in any job's log counts as a failure.
    if [ "$rc" -eq 0 ] && grep -q -E '^==[0-9]+==ERROR|^==fuzz_plist==|^SUMMARY: ' "$logs"/*.log; then
        rc=1
    fi
    # main.log repeats the jobs' logs: count executions in those only.
    shopt -s nullglob
    jobs_logs=("$logs"/fuzz-*.log)
    summarize "$rc" "${jobs_logs[@]:-$logs/main.log}"
    ;;
*)
    echo "usage: run.sh bounded|long" >&2
    exit 2
    ;;
esac
