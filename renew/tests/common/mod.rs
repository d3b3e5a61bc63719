//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The codec crate's third-party vectors (copied from `../shared/vectors` with their provenance README).
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../renewal-codec/tests/vectors")
}

pub fn vector(name: &str) -> Vec<u8> {
    std::fs::read(vectors_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Whether an external tool is present. Under `CI=true` a missing tool fails the test loudly;
/// elsewhere the test prints why it skips and returns `false`.
pub fn require_tool(tool: &str) -> bool {
    let present = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if present {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{tool} is required under CI=true but is not installed (scripts/test.sh installs it)"
        );
    }
    eprintln!("SKIP: {tool} not installed; run scripts/test.sh to install it");
    false
}

/// Runs a command, returning stdout; panics with stderr when it fails.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "cardrenew-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
