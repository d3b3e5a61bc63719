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

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
# A throwaway PostgreSQL for the shared-state tests (sim-ca/tests/postgres.rs), unless one is
# given; stopped and removed on exit.
if [ -z "${CARDRENEW_POSTGRES_URL:-}" ]; then
  echo "== PostgreSQL (throwaway cluster)"
  pg=$(./scripts/pg-temp.sh)
  trap './scripts/pg-temp.sh stop "${pg%% *}"' EXIT
  export CARDRENEW_POSTGRES_URL="${pg#* }"
fi
echo "== cargo test"
cargo test --locked --workspace --all-features
echo "== benchmarks compile"
cargo bench --locked -p benches --no-run
# Instructions per codec operation against the committed baseline (fails on a regression beyond
# CALLGRIND_MARGIN percent, default 10).
echo "== instruction counts (callgrind)"
./scripts/callgrind.sh
# Fuzz smoke: every target for a few seconds after replaying its committed regression inputs
# (long runs: scripts/fuzz.sh 3600). Needs the nightly toolchain; cargo-fuzz is installed if
# missing.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "== fuzz smoke"
  ./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
elif [ "${CI:-}" = true ]; then
  echo "test.sh: the nightly toolchain (for cargo fuzz) is missing" >&2
  exit 1
else
  echo "SKIP: fuzz smoke (no nightly toolchain: rustup toolchain install nightly)"
fi
# What the run left on disk (a CI machine once ran out of space mid-build).
echo "== disk used by build outputs"
du -sh target fuzz/target 2>/dev/null || true
