#!/usr/bin/env bash
# The whole test suite: what the README calls "the test command" and what CI runs.
# Installs missing Debian packages the tests need, then runs format, lint and every test.
# Under CI=true a missing component is an error, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages and a file or command each provides.
need_pkgs=()
need() { [ -e "$2" ] || command -v "$2" >/dev/null 2>&1 || need_pkgs+=("$1"); }
need openssl openssl
need curl curl
need softhsm2 softhsm2-util
need chromium chromium
need pcscd pcscd
need vsmartcard-vpcd /usr/lib/pcsc/drivers/serial/libifdvpcd.so
need opensc pkcs11-tool
need yubico-piv-tool yubico-piv-tool
# Yubico's PKCS#11 module (the card-fidelity test asks it too).
need ykcs11 /usr/lib/x86_64-linux-gnu/libykcs11.so
# Yubico's YubiKey Manager (ykman): the fidelity test reads device info and attests through it.
need yubikey-manager ykman
need libpcsclite-dev /usr/lib/x86_64-linux-gnu/pkgconfig/libpcsclite.pc
need pkg-config pkg-config
need libssl-dev /usr/include/openssl/cms.h
need valgrind valgrind
need pinentry-tty /usr/bin/pinentry-tty
need bsdutils /usr/bin/script
# strongSwan's pki, an EST client we did not write, and its curl fetcher (sim-ca/tests/strongswan.rs).
need strongswan-pki pki
need libstrongswan-extra-plugins /usr/lib/ipsec/plugins/libstrongswan-curl.so
# Java and Bouncy Castle: a CMP implementation we did not write reads our messages
# (sim-ca/tests/bouncy_castle_cmp.rs).
need default-jre-headless java
need libbcpkix-java /usr/share/java/bcpkix.jar
# PostgreSQL server binaries (the store tests start a throwaway cluster, no system service).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_pkgs+=(postgresql)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing: ${need_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  fi
fi

nightly=false
rustup toolchain list 2>/dev/null | grep '^nightly' >/dev/null && nightly=true
if [ "$nightly" = false ] && [ "${CI:-}" = true ]; then
  echo "test.sh: the nightly toolchain (for cargo fuzz) is missing" >&2
  exit 1
fi
# What runs in the background (the optimised builds, the PostgreSQL cluster) stops with us.
prebuild=""
pg=""
cleanup() {
  [ -z "$prebuild" ] || kill -- "-$prebuild" 2>/dev/null || true
  [ -z "$pg" ] || ./scripts/pg-temp.sh stop "${pg%% *}"
}
trap cleanup EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
# The optimised builds the last two steps need — the codec's instruction counter (release, the
# codec's dependencies only) and the fuzz targets (nightly, their own target directory) — are
# made from the start, at the lowest CPU and I/O priority, while lint and tests run: the tests
# spend much of their time waiting on the processes they drive (the two cores were 40 % busy on
# average over the tests, measured), and the builds take what the rest leaves. Neither waits for
# the other's lock: lint and tests hold target/debug's, the builds target/release's and
# fuzz/target's.
prebuild_log=$(mktemp)
echo "== optimised builds in the background (log: $prebuild_log)"
# A session of its own, so that an early exit stops the whole build (cleanup above). A new session
# is a new scheduling autogroup, weighed as much as ours whatever its processes' nice values:
# the group itself is made nice 19 (without that, lint took 2.7 times as long).
setsid bash -c '
  set -euo pipefail
  echo 19 >/proc/self/autogroup 2>/dev/null || true
  lowest=(nice -n 19)
  ! ionice -c 3 true 2>/dev/null || lowest+=(ionice -c 3)
  "${lowest[@]}" cargo build --locked --release -q -p codec-ops
  [ "$1" = false ] || "${lowest[@]}" ./scripts/fuzz.sh --build-only
' prebuild "$nightly" >"$prebuild_log" 2>&1 &
prebuild=$!
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
# The API docs build without a warning (a broken intra-doc link is a reader's dead end);
# clippy's checked dependencies serve it: ~10 s.
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --all-features --no-deps -q
# A throwaway PostgreSQL for the shared-state tests (sim-ca/tests/postgres.rs), unless one is
# given; stopped and removed on exit.
if [ -z "${CARDRENEW_POSTGRES_URL:-}" ]; then
  echo "== PostgreSQL (throwaway cluster)"
  pg=$(./scripts/pg-temp.sh)
  export CARDRENEW_POSTGRES_URL="${pg#* }"
fi
# Every test in a process of its own, twice as many at a time as there are cores (most of them
# wait on processes, sockets and pcscd): cargo-nextest (.config/nextest.toml: tests that drive
# pcscd take turns and start first). Without nextest, cargo test runs the same tests one
# binary after another, about twice as long.
if cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo nextest run"
  cargo nextest run --locked --workspace --all-features --no-fail-fast \
    --test-threads "${TEST_THREADS:-$(( $(nproc) * 2 ))}"
  echo "== doc tests"
  cargo test --locked --workspace --all-features --doc
else
  echo "== cargo test (cargo-nextest not installed: cargo install cargo-nextest --locked)"
  cargo test --locked --workspace --all-features
fi
echo "== benchmarks compile"
# The whole workspace's features, as the tests were built: nothing but the benchmarks is compiled.
cargo test --locked --workspace --all-features --benches --no-run
echo "== waiting for the optimised builds"
wait "$prebuild" || { cat "$prebuild_log" >&2; echo "test.sh: an optimised build failed" >&2; exit 1; }
prebuild=""
# Instructions per codec operation against the committed baseline (fails on a regression beyond
# CALLGRIND_MARGIN percent, default 10).
echo "== instruction counts (callgrind)"
./scripts/callgrind.sh
# Fuzz smoke: every target for a few seconds after replaying its committed regression inputs
# (long runs: scripts/fuzz.sh 3600). Needs the nightly toolchain; cargo-fuzz is installed if
# missing.
if [ "$nightly" = true ]; then
  echo "== fuzz smoke"
  ./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
else
  echo "SKIP: fuzz smoke (no nightly toolchain: rustup toolchain install nightly)"
fi
# What the run left on disk (a CI machine once ran out of space mid-build).
echo "== disk used by build outputs"
du -sh target fuzz/target 2>/dev/null || true
