//! The HTML report renders in a real browser: headless Chromium (Debian `chromium`) loads
//! `index.html` and the rendered DOM holds one sequence diagram per scenario, the PIN prompts
//! marked and the failing steps highlighted.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use conformance::{matrix::default_matrix, report, runner};

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let present = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("chromium").is_file()));
    if !present {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "chromium is required under CI=true (scripts/test.sh installs it)"
        );
        eprintln!("SKIP: chromium not installed");
        return;
    }
    let names = [
        "ca/issue/fullcmc",
        "net/drop-after-read/cmc",
        "card/generate-pulled-after/simplereenroll",
    ];
    let results: Vec<_> = default_matrix()
        .into_iter()
        .filter(|s| names.contains(&s.name.as_str()))
        .map(|s| runner::run(&s, 1))
        .collect();
    assert_eq!(results.len(), 3);
    let dir = std::env::temp_dir().join(format!("cardrenew-html-{}", std::process::id()));
    report::write(&dir, &results, 1).unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", dir.join("index.html").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("3 scenarios, 3 as expected, 0 unexpected"),
        "summary missing"
    );
    assert_eq!(dom.matches("<section class=\"scenario\"").count(), 3);
    assert_eq!(dom.matches("<svg").count(), 3);
    for name in names {
        assert!(dom.contains(&format!("id=\"{name}\"")), "{name}");
    }
    // One PIN prompt per scenario, marked; the dropped connection and the pulled card are red.
    assert_eq!(dom.matches("class=\"step pin\"").count(), 3);
    assert!(dom.contains("card removed"));
    assert!(dom.matches("class=\"step failed\"").count() >= 2);
    let _ = std::fs::remove_dir_all(&dir);
}
