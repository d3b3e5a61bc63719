#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 10) with cargo fuzz on the nightly
# toolchain, after replaying the committed regression inputs (fuzz/regressions/TARGET/*, one
# file per crash ever found: each must now run clean). Seeds come from the third-party vectors,
# a deterministic sample renewal, the scenario examples and the APDU scripts.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   scripts/fuzz.sh --build-only    builds the targets and stops (the test command does it at
#                                   low priority while the tests run; the later run reuses it)
#
# Targets run as many at once as there are cores (FUZZ_JOBS=N to choose), each on one core.
# Prints, per target, the executions reached (also in target/fuzz-report.txt, or FUZZ_REPORT).
# FUZZ_RUNS=N stops a target after N executions (SECONDS still caps it). FUZZ_SANITIZER=address builds with ASan
# (default none: the Rust code forbids unsafe, and a run without ASan reaches ~5x more
# executions in the same time). Exit status is non-zero when a target crashes; the crashing
# input is in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_ONLY=false
[ "${1:-}" = --build-only ] && { BUILD_ONLY=true; shift; }
SECONDS_PER_TARGET="${1:-10}"
shift || true
ALL_TARGETS=(cmc_request cmc_response inspect_input public_key sim_card_apdus piv_card_answers sim_ca_decision journal scenario_toml wstep_envelope key_attestation cmp_message)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
SANITIZER="${FUZZ_SANITIZER:-none}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets (sanitizer: $SANITIZER)"
(cd fuzz && cargo +nightly fuzz build -s "$SANITIZER" -O)
[ "$BUILD_ONLY" = false ] || exit 0

# Seed corpora, rebuilt each run under target/ (nothing generated is committed).
SEEDS=target/fuzz-seeds
for t in "${ALL_TARGETS[@]}"; do mkdir -p "$SEEDS/$t"; done
for f in renewal-codec/tests/vectors/*.der; do
  cp "$f" "$SEEDS/cmc_request/"; cp "$f" "$SEEDS/inspect_input/"; cp "$f" "$SEEDS/cmc_response/"
done
cp renewal-codec/tests/vectors/*.b64 "$SEEDS/inspect_input/" 2>/dev/null || true
cp renewal-codec/tests/vectors/wstep/*.xml "$SEEDS/wstep_envelope/"
cp renewal-codec/tests/vectors/cmp/*.der "$SEEDS/cmp_message/"
cp renewal-codec/tests/vectors/cmp/kur-p256.der "$SEEDS/inspect_input/cmp-kur.der"
SAMPLE=target/fuzz-sample
# The `renew` the tests use, built as the test command builds it (the whole workspace's
# features, dev-dependencies included): `cargo run -p renew` or `cargo build` would unify other
# features and recompile a third of the dependencies for one sample (65-80 s, measured).
cargo test --locked --quiet --workspace --all-features --no-run 2>&1 \
  | { grep -v '^ *Executable' || true; }
"${CARGO_TARGET_DIR:-target}/debug/renew" sample --deterministic --out-dir "$SAMPLE" >/dev/null
cp "$SAMPLE/request.der" "$SEEDS/cmc_request/sample-request.der"
cp "$SAMPLE/request.der" "$SEEDS/inspect_input/sample-request.der"
cp "$SAMPLE/old.pem" "$SEEDS/inspect_input/old.pem"
{ printf '\x00'; cat "$SAMPLE/request.der"; } > "$SEEDS/sim_ca_decision/fullcmc-valid"
printf '\x01' > "$SEEDS/sim_ca_decision/simple-empty"
# OpenSSL's CMP messages at the CA's CMP endpoint (another PKI's: they reach the identity checks).
for f in renewal-codec/tests/vectors/cmp/k*.der renewal-codec/tests/vectors/cmp/certconf-*.der; do
  { printf '\x08'; cat "$f"; } > "$SEEDS/sim_ca_decision/cmp-$(basename "$f" .der)"
done
# key_attestation edits a genuine bundle: an empty patch at offset 0 is the genuine one.
printf '\x00\x00\x00' > "$SEEDS/key_attestation/genuine"
if command -v openssl >/dev/null; then
  openssl x509 -in "$SAMPLE/old.pem" -pubkey -noout | openssl pkey -pubin -outform DER \
    > "$SEEDS/public_key/p256.der"
fi
for f in conformance/scenarios/*.toml; do
  cp "$f" "$SEEDS/scenario_toml/"
done
printf '%s\n' '{"record":"begin","old":"9a","old_certificate":"00","mode":"fullcmc"}' \
  '{"record":"generate-intent","before":["9a"]}' '{"record":"generated","container":"82"}' \
  > "$SEEDS/journal/begin.jsonl"
# APDU scripts: each named scenario becomes one seed, its APDUs length-prefixed.
command -v python3 >/dev/null && python3 - "$SEEDS/sim_card_apdus" <<'PY'
import re, sys
seeds, current = [], bytearray()
for line in open("sim-card/tests/apdu_scripts.txt"):
    if line.startswith("=="):
        if current:
            seeds.append(current)
        current = bytearray()
        continue
    m = re.match(r"([0-9A-Fa-f]{2}(?: [0-9A-Fa-f]{2})*)", line.strip())
    if m:
        apdu = bytes.fromhex(m.group(1).replace(" ", ""))
        if len(apdu) < 256:
            current += bytes([len(apdu)]) + apdu
if current:
    seeds.append(current)
for i, seed in enumerate(seeds):
    open(f"{sys.argv[1]}/script-{i}", "wb").write(seed)
PY

REPORT="${FUZZ_REPORT:-target/fuzz-report.txt}"
RUNS_ARG=()
[ -n "${FUZZ_RUNS:-}" ] && RUNS_ARG=(-runs="$FUZZ_RUNS")
# One target: its regression inputs replayed, then SECONDS of fuzzing. Leaves its report line in
# target/fuzz-TARGET.result when both pass; no such file is the target's failure.
fuzz_one() {
  local t=$1 log="target/fuzz-$1.log"
  rm -f "target/fuzz-$t.result"
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    echo "== $t: replaying $(ls "fuzz/regressions/$t" | wc -l) regression input(s)"
    if ! (cd fuzz && cargo +nightly fuzz run -s "$SANITIZER" -O "$t" "regressions/$t" -- -runs=0) \
      >"$log.replay" 2>&1; then
      cat "$log.replay" >&2
      echo "fuzz.sh: $t fails on a committed regression input" >&2
      return
    fi
  fi
  mkdir -p "target/fuzz-corpus/$t"
  echo "== $t: ${SECONDS_PER_TARGET}s"
  if (cd fuzz && cargo +nightly fuzz run -s "$SANITIZER" -O "$t" "../target/fuzz-corpus/$t" "../$SEEDS/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" "${RUNS_ARG[@]}" -print_final_stats=1 -max_len=65536 -rss_limit_mb=4096) >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$SECONDS_PER_TARGET")
    printf '%-18s %14s %10s\n' "$t" "$runs" "$took" | tee "target/fuzz-$t.result"
  else
    echo "fuzz.sh: $t crashed; input in fuzz/artifacts/$t/, log in $log" >&2
    tail -40 "$log" >&2
  fi
}
# As many targets at once as there are cores (FUZZ_JOBS): libFuzzer runs one process on one
# core, so each target still gets its SECONDS of a core.
JOBS="${FUZZ_JOBS:-$(nproc)}"
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
status=0
printf '%-18s %14s %10s\n' target executions seconds > "$REPORT"
for t in "${TARGETS[@]}"; do
  if [ -f "target/fuzz-$t.result" ]; then
    cat "target/fuzz-$t.result" >> "$REPORT"
  else
    printf '%-18s %14s %10s\n' "$t" failed - >> "$REPORT"
    status=1
  fi
done
cat "$REPORT"
exit $status
