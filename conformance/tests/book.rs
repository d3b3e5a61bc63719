//! The book checks itself, as rustdoc checks its examples: every relative link in the README,
//! `ARCHITECTURE.md`, `CHANGELOG.md` and `docs/` resolves (file and heading), every page of
//! `docs/` is reachable from the README, and every command block marked runnable
//! (```` ```sh runnable ````) runs, page by page, in a fresh directory with the workspace's
//! binaries on `PATH` — as a new user pasting the blocks in order would.
//!
//! A runnable block may say what it needs beyond our binaries (```` ```sh runnable
//! needs=softhsm2-util,pkcs11-tool ````): outside CI a page whose tools are missing is skipped
//! with the reason; under `CI=true` it fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The pages the checks cover: the front door and every Markdown file under `docs/`.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(|p| root.join(p))
        .collect();
    let mut stack = vec![root.join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// A fenced block: its info string and its text.
struct Block {
    info: String,
    text: String,
    line: usize,
}

/// The text outside fenced blocks, and the blocks.
fn split(markdown: &str) -> (String, Vec<Block>) {
    let mut prose = String::new();
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some(_)) => blocks.push(open.take().unwrap()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unterminated code block");
    (prose, blocks)
}

/// `[text](target)` links in prose (inline code spans removed first).
fn links(prose: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose.lines() {
        let line: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to
/// `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let (prose, _) = split(markdown);
    prose
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_resolves_and_every_page_is_reachable() {
    let root = root();
    let pages = pages();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for page in &pages {
        let text = std::fs::read_to_string(page)
            .unwrap_or_else(|e| panic!("{}: {e} (the book needs it)", page.display()));
        let (prose, _) = split(&text);
        for link in links(&prose) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            let shown = target.strip_prefix(&root).unwrap_or(&target).display();
            if !target.exists() {
                problems.push(format!(
                    "{}: link to {link}: {shown} does not exist",
                    page.display()
                ));
                continue;
            }
            if let Some(anchor) = anchor {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    problems.push(format!(
                        "{}: link to {link}: no heading #{anchor} in {shown}",
                        page.display()
                    ));
                }
            }
            if let Ok(target) = target.canonicalize() {
                graph
                    .entry(page.canonicalize().unwrap())
                    .or_default()
                    .push(target);
            }
        }
    }
    // Every page of docs/ is reachable from the README.
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.join("README.md").canonicalize().unwrap()];
    while let Some(page) = stack.pop() {
        if seen.insert(page.clone()) {
            stack.extend(graph.get(&page).cloned().unwrap_or_default());
        }
    }
    for page in &pages {
        if !seen.contains(&page.canonicalize().unwrap()) {
            problems.push(format!(
                "{}: an orphan page (no link from the README leads to it)",
                page.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_broken_links_and_anchors() {
    // The checks above must be able to fail: a link to a missing file and to a missing heading.
    let (prose, _) = split(
        "# A title\n\nSee [x](missing.md) and [y](#no-such-heading).\n```sh\n[z](in-code.md)\n```\n",
    );
    assert_eq!(links(&prose), vec!["missing.md", "#no-such-heading"]);
    assert!(anchors("# A title: the `renew` CLI (two)\n").contains("a-title-the-renew-cli-two"));
}

/// What a page's runnable blocks need beyond our binaries.
fn needs(info: &str) -> Vec<String> {
    info.split_whitespace()
        .filter_map(|w| w.strip_prefix("needs="))
        .flat_map(|w| w.split(',').map(str::to_string))
        .collect()
}

#[test]
fn every_runnable_block_runs() {
    let root = root();
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    for tool in ["renew", "sim-card", "sim-ca"] {
        assert!(
            bin_dir.join(tool).exists(),
            "{} not built (cargo test --workspace --all-features builds it)",
            bin_dir.join(tool).display()
        );
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let (_, blocks) = split(&text);
        let runnable: Vec<&Block> = blocks
            .iter()
            .filter(|b| b.info.split_whitespace().any(|w| w == "runnable"))
            .collect();
        if runnable.is_empty() {
            continue;
        }
        let shown = page.strip_prefix(&root).unwrap().display().to_string();
        let missing: Vec<String> = runnable
            .iter()
            .flat_map(|b| needs(&b.info))
            .filter(|tool| common::which(tool).is_none() && !Path::new(tool).exists())
            .collect();
        if !missing.is_empty() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{shown}: runnable blocks need {missing:?} (scripts/test.sh installs them)"
            );
            println!("SKIP: {shown}: {missing:?} not installed");
            continue;
        }
        // One shell per page, as one terminal: blocks share the directory and variables; the
        // servers a page starts are stopped when it ends, whatever happens.
        let mut script = String::from(
            "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT\n",
        );
        for block in &runnable {
            script.push_str(&format!(
                "echo '>>> {shown}:{}' >&2\n{}\n",
                block.line, block.text
            ));
        }
        let dir = std::env::temp_dir().join(format!(
            "cardrenew-book-{}-{}",
            std::process::id(),
            shown.replace('/', "-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&dir)
            .env("PATH", &path)
            .env("REPO", &root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shown}: a runnable block failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        println!("ran the {} runnable block(s) of {shown}", runnable.len());
        ran += 1;
    }
    assert!(
        ran > 0,
        "no runnable block ran: the book's examples are untested"
    );
}
