#!/usr/bin/env bash
# Instructions per codec operation, counted by valgrind's callgrind (the same whatever else the
# machine is doing), compared with the committed baseline benches/callgrind-baseline.txt.
#
#   scripts/callgrind.sh            count, print, fail if an operation costs more than the
#                                   baseline + CALLGRIND_MARGIN percent (default 10)
#   scripts/callgrind.sh --update   count and rewrite the baseline
#
# Each operation runs under callgrind with N = 1 and N = 11 repetitions (benches/codec-ops/, a
# package of its own: its optimised build compiles the codec's dependencies only); the difference
# over 10 is the cost of one operation, set-up cancelled out.
# Counts depend on the CPU features valgrind reports (aws-lc picks AVX2/ADX code by CPUID):
# the baseline holds for machines of this project's kind; on another, run --update first.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=benches/callgrind-baseline.txt
margin=${CALLGRIND_MARGIN:-10}
update=false
[ "${1:-}" = --update ] && update=true

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
cargo build --locked --release -q -p codec-ops
bin=target/release/codec-ops
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Every (operation, repetitions) run, as many at once as there are cores: the counts do not
# depend on what else runs. Each leaves its total in $out/OPERATION.N.
ops=$("$bin" list)
run_one() { # operation, repetitions
  local name=${1//\//_}.$2
  valgrind --tool=callgrind --callgrind-out-file="$out/$name.cg" "$bin" "$1" "$2" >/dev/null \
    2>"$out/$name.log" || { cat "$out/$name.log" >&2; return 1; }
  awk '/^(summary|totals):/ {print $2; exit}' "$out/$name.cg" >"$out/$name"
}
export -f run_one
export bin out
for op in $ops; do printf '%s 1\n%s 11\n' "$op" "$op"; done \
  | xargs -P "$(nproc)" -L 1 bash -c 'run_one "$0" "$1"' \
  || { echo "callgrind.sh: a run under valgrind failed" >&2; exit 1; }
count() { # operation, repetitions -> instructions of the whole run
  cat "$out/${1//\//_}.$2"
}

declare -A base=()
if [ -f "$baseline" ]; then
  while read -r op n; do [[ $op == \#* || -z $op ]] || base[$op]=$n; done <"$baseline"
fi
status=0
results=()
printf '%-24s %14s %14s %8s\n' operation instructions baseline change
for op in $ops; do
  one=$(count "$op" 1)
  eleven=$(count "$op" 11)
  n=$(( (eleven - one) / 10 ))
  results+=("$op $n")
  if [ -n "${base[$op]:-}" ]; then
    change=$(awk -v n="$n" -v b="${base[$op]}" 'BEGIN {printf "%+.1f%%", (n - b) * 100 / b}')
    worse=$(awk -v n="$n" -v b="${base[$op]}" -v m="$margin" 'BEGIN {print (n > b * (1 + m / 100)) ? 1 : 0}')
    printf '%-24s %14d %14d %8s\n' "$op" "$n" "${base[$op]}" "$change"
    if [ "$worse" = 1 ] && [ "$update" = false ]; then
      echo "callgrind.sh: $op costs $change instructions over the baseline (margin ${margin}%)" >&2
      status=1
    fi
  else
    printf '%-24s %14d %14s %8s\n' "$op" "$n" - new
    [ "$update" = true ] || { echo "callgrind.sh: $op has no baseline (scripts/callgrind.sh --update)" >&2; status=1; }
  fi
done
if [ "$update" = true ]; then
  {
    echo "# Instructions per operation (scripts/callgrind.sh --update); valgrind $(valgrind --version | sed 's/valgrind-//'), $(rustc --version | cut -d' ' -f2)"
    printf '%s\n' "${results[@]}"
  } >"$baseline"
  echo "baseline written: $baseline"
fi
exit $status
