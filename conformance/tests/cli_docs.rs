//! The man pages and shell completions in `docs/` are what the binaries generate from their own
//! clap definitions today: an option added, renamed or re-documented without
//! `scripts/cli-docs.sh` fails here.
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, path::Path};

/// Every file under `dir`, by its path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["man", "completions"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
            out.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

#[test]
fn man_pages_and_completions_are_current() {
    let generated = std::env::temp_dir().join(format!("cardrenew-cli-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&generated);
    for bin in ["renew", "sim-card", "sim-ca"] {
        let status = common::bin(bin)
            .env("CARDRENEW_GENERATE_DOCS", &generated)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "{bin} could not generate its documentation"
        );
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let (now, committed) = (files(&generated), files(&docs));
    let _ = std::fs::remove_dir_all(&generated);
    assert!(now.len() > 30, "only {} files generated", now.len());
    let stale: Vec<&String> = now
        .iter()
        .filter(|(name, bytes)| committed.get(*name) != Some(bytes))
        .map(|(name, _)| name)
        .chain(committed.keys().filter(|name| !now.contains_key(*name)))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/ is not current for {stale:?}: run scripts/cli-docs.sh and commit the result"
    );
    // Every page names its command and documents its options.
    let run = String::from_utf8_lossy(&now["man/renew-run.1"]).into_owned();
    assert!(
        run.contains("renew\\-run") && run.contains("\\-\\-ca\\-cert"),
        "{run}"
    );
}
