#!/usr/bin/env bash
# Runs every benchmark harness once at a tiny size, each through its own
# make target (`make bench-smoke`, run by `make test`), so that the
# harnesses, their flags and the Makefile's wiring cannot rot unnoticed.
#
# A harness fails the smoke run when it exits non-zero: it could not run or
# measure, or a check of what it measured failed (see each harness's doc).
# Harnesses print goals as met/missed and never exit non-zero on a missed
# goal, so a slow machine cannot fail this. Every harness runs even after
# one failed; the summary at the end gives each one's time and status.
#
#   scripts/bench-smoke.sh [NAME...]   # NAME: edge, provision, … (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
make=${MAKE:-make}

# name, then the make variables of its tiny size. The sizes are the smallest
# at which every step of the harness still runs (two sites where a harness
# compares or moves sites, one wrk round, no warm-up waits).
harnesses=(
  "edge|DURATION=1s CONNECTIONS=2 ROUNDS=1 BENCH_FLAGS=-warmup=0"
  "provision|N=2 BENCH_FLAGS=-idle-wait=0 -cold=1"
  "backup|POSTS=20 UPLOADS_MB=1"
  # make test's go test runs bench/scale's TestSmoke (SQLite, simulated
  # shards only); this one takes PostgreSQL and one real shard.
  "scale|SITES=60 SHARDS=5 STORE=postgres SEED=40 BENCH_FLAGS=-real=1 -real-sites=1 -gets=50 -list-pages=2 -changes=5 -heartbeat=2s -timeout=4m"
  # db: direct runs again after pooler+replica (whose stopped replica it must
  # not try to reach) and the goals average the anchor's runs.
  "db|BENCH_DB_CONFIGS=direct,pooler+replica,direct,pooler BENCH_DB_SITES=2 BENCH_DB_DURATION=2s BENCH_DB_WARMUP=1s BENCH_DB_CONNECTIONS=4 BENCH_FLAGS=-every=5"
  "rotate|ROTATE_SITES=2 ROTATE_CONNECTIONS=4 BENCH_FLAGS=-warmup=2s -after=1s"
  "code|CODE_SITES=2 BENCH_FLAGS=-wave=1 -install-parallel=2"
  "portal|PORTAL_SITES=300"
  "openbasedir|BENCH_FLAGS=-requests=5 -rounds=1"
  "import|IMPORT_SIZE_MB=4 BENCH_FLAGS=-modes=archive,live"
  "move|MOVES=1"
  "chaos|CHAOS_SITES=1 CHAOS_WORKERS=2 BENCH_FLAGS=-faults=php-fpm -baseline=1s -settle=1s -limit=1m"
)

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

summary=()
failed=0
total_start=$SECONDS
for h in "${harnesses[@]}"; do
  name=${h%%|*}
  vars=${h#*|}
  selected "$name" || continue
  # VAR=value pairs; BENCH_FLAGS takes the rest of the line.
  args=()
  rest=$vars
  while [ -n "$rest" ]; do
    case $rest in
      BENCH_FLAGS=*) args+=("BENCH_FLAGS=${rest#BENCH_FLAGS=}"); rest= ;;
      *) args+=("${rest%% *}"); [[ $rest == *" "* ]] && rest=${rest#* } || rest= ;;
    esac
  done
  echo "== bench-smoke: $make bench-$name ${args[*]}"
  start=$SECONDS
  if "$make" --no-print-directory "bench-$name" "${args[@]}"; then
    status=ok
  else
    status=FAILED
    failed=$((failed + 1))
  fi
  summary+=("$(printf '%-12s %4ds  %s' "$name" $((SECONDS - start)) "$status")")
  echo "== bench-smoke: bench-$name $status after $((SECONDS - start))s"
done

echo
echo "bench-smoke: $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${summary[@]}"
echo "total        $((SECONDS - total_start))s"
if [ "$failed" -gt 0 ]; then
  echo "bench-smoke: $failed harness(es) failed" >&2
  exit 1
fi
