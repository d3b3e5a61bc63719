//! Reports: the terminal table, JSON and JUnit XML.

use std::{fmt::Write as _, path::Path};

use crate::runner::Result;

/// The final table.
pub fn table(results: &[Result]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<52} {:<20} {:<20} {:>4} {:>9} {:>6}  verdict",
        "scenario", "expected", "observed", "PINs", "cont.b/a", "ms"
    );
    for r in results {
        let observed = r
            .observed
            .map(|o| format!("{o:?}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<52} {:<20} {:<20} {:>4} {:>4}/{:<4} {:>6}  {}",
            r.name,
            format!("{:?}", r.expected),
            observed,
            r.prompts,
            r.containers.0,
            r.containers.1,
            r.millis,
            match &r.problem {
                None => "ok".to_string(),
                Some(p) => format!("UNEXPECTED: {p}"),
            }
        );
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `report.json` and `junit.xml` into `dir`.
pub fn write(dir: &Path, results: &[Result], seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let scenarios: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "expected": format!("{:?}", r.expected),
                "observed": r.observed.map(|o| format!("{o:?}")),
                "pin_prompts": r.prompts,
                "containers_before": r.containers.0,
                "containers_after": r.containers.1,
                "millis": r.millis,
                "passed": r.passed(),
                "problem": r.problem,
            })
        })
        .collect();
    let json = serde_json::json!({ "seed": seed, "scenarios": scenarios }).to_string();
    std::fs::write(dir.join("report.json"), json)?;
    let failures = results.iter().filter(|r| !r.passed()).count();
    let total_ms: u128 = results.iter().map(|r| r.millis).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"cardrenew-conformance\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        results.len(),
        total_ms as f64 / 1000.0
    );
    for r in results {
        let _ = write!(
            xml,
            "  <testcase classname=\"conformance\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.name),
            r.millis as f64 / 1000.0
        );
        match &r.problem {
            None => xml.push_str("/>\n"),
            Some(p) => {
                let _ = writeln!(xml, "><failure message=\"{}\"/></testcase>", xml_escape(p));
            }
        }
    }
    xml.push_str("</testsuite>\n");
    std::fs::write(dir.join("junit.xml"), xml)
}
