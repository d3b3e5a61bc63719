#!/usr/bin/env bash
# Regenerates the man pages (docs/man) and shell completions (docs/completions) from the
# binaries' clap definitions. conformance/tests/cli_docs.rs fails when they are not current.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --all-features -p renew -p sim-card -p sim-ca --bins
rm -rf docs/man docs/completions
for bin in renew sim-card sim-ca; do
  CARDRENEW_GENERATE_DOCS=docs "target/debug/$bin"
done
echo "docs/man: $(ls docs/man | wc -l) pages; docs/completions: $(ls docs/completions | wc -l) files"
