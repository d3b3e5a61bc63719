//! Reports: the terminal table, JSON and JUnit XML.

use std::{fmt::Write as _, path::Path};

use crate::{matrix::Expected, runner::Result};

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
            .map(|o| o.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<52} {:<20} {:<20} {:>4} {:>4}/{:<4} {:>6}  {}",
            r.name,
            r.expected.to_string(),
            observed,
            r.prompts,
            r.containers.0,
            r.containers.1,
            r.millis,
            match (&r.problem, &r.skipped) {
                (_, Some(reason)) => format!("skipped: {reason}"),
                (None, None) => "ok".to_string(),
                (Some(p), None) => format!("UNEXPECTED: {p}"),
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

/// Writes `report.json`, `junit.xml` and `index.html` into `dir`.
pub fn write(dir: &Path, results: &[Result], seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let scenarios: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "expected": r.expected.name(),
                "observed": r.observed.map(Expected::name),
                "pin_prompts": r.prompts,
                "containers_before": r.containers.0,
                "containers_after": r.containers.1,
                "millis": r.millis,
                "passed": r.passed(),
                "skipped": r.skipped,
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
            None if r.skipped.is_some() => {
                let _ = writeln!(
                    xml,
                    "><skipped message=\"{}\"/></testcase>",
                    xml_escape(r.skipped.as_deref().unwrap_or_default())
                );
            }
            None => xml.push_str("/>\n"),
            Some(p) => {
                let _ = writeln!(xml, "><failure message=\"{}\"/></testcase>", xml_escape(p));
            }
        }
    }
    xml.push_str("</testsuite>\n");
    std::fs::write(dir.join("junit.xml"), xml)?;
    std::fs::write(dir.join("index.html"), html(results, seed))
}

fn html_escape(s: &str) -> String {
    xml_escape(s).replace('\'', "&#39;")
}

/// One scenario's sequence diagram: client, card and gateway/CA lanes; PIN prompts marked;
/// failing steps in red.
fn sequence_svg(r: &Result) -> String {
    use crate::trace::Lane;
    const ROW: usize = 22;
    let x = |lane: Lane| match lane {
        Lane::Client => 400,
        Lane::Card => 680,
        Lane::Ca => 940,
    };
    let height = 50 + ROW * (r.trace.len() + 1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"seq\" width=\"1060\" height=\"{height}\" viewBox=\"0 0 1060 {height}\">\n"
    );
    for (lane, name) in [
        (Lane::Client, "client"),
        (Lane::Card, "card"),
        (Lane::Ca, "gateway / CA"),
    ] {
        let _ = writeln!(
            svg,
            "<text class=\"lane\" x=\"{0}\" y=\"20\" text-anchor=\"middle\">{name}</text><line x1=\"{0}\" y1=\"28\" x2=\"{0}\" y2=\"{1}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
            x(lane),
            height - 8
        );
    }
    for (i, (event, times)) in r.trace.iter().enumerate() {
        let y = 46 + i * ROW;
        let color = if event.failed {
            "#c62828"
        } else if event.pin {
            "#a15c00"
        } else {
            "#222"
        };
        let label = if *times > 1 {
            format!("{} ×{times}", event.text)
        } else {
            event.text.clone()
        };
        let class = if event.failed {
            "step failed"
        } else if event.pin {
            "step pin"
        } else {
            "step"
        };
        match event.lane {
            Lane::Client => {
                let badge = if event.pin {
                    format!(
                        "<rect x=\"{}\" y=\"{}\" width=\"30\" height=\"14\" rx=\"3\" fill=\"#ffcc80\"/><text x=\"{}\" y=\"{}\" fill=\"#6d3f00\">PIN</text>",
                        x(Lane::Client) + 8,
                        y - 15,
                        x(Lane::Client) + 12,
                        y - 4
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    svg,
                    "<g class=\"{class}\"><circle cx=\"{0}\" cy=\"{1}\" r=\"4\" fill=\"{color}\"/><text x=\"{2}\" y=\"{3}\" fill=\"{color}\" text-anchor=\"end\">{4}</text>{badge}</g>",
                    x(Lane::Client),
                    y - 8,
                    x(Lane::Client) - 10,
                    y - 4,
                    html_escape(&label)
                );
            }
            lane => {
                let (x1, x2) = (x(Lane::Client), x(lane));
                let _ = writeln!(
                    svg,
                    "<g class=\"{class}\"><line x1=\"{x1}\" y1=\"{0}\" x2=\"{x2}\" y2=\"{0}\" stroke=\"{color}\" marker-end=\"url(#arrow)\"/><text x=\"{1}\" y=\"{2}\" fill=\"{color}\">{3}</text></g>",
                    y - 4,
                    x1 + 8,
                    y - 8,
                    html_escape(&label)
                );
            }
        }
    }
    svg.push_str("<defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"3\" orient=\"auto\"><path d=\"M0,0 L7,3 L0,6 z\" fill=\"#444\"/></marker></defs>\n</svg>");
    svg
}

/// `index.html`: a summary table and, per scenario, its sequence diagram.
pub fn html(results: &[Result], seed: u64) -> String {
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cardrenew conformance</title>\n<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}} .bad{{background:#fdd}} svg text{{font-size:12px;font-family:monospace}} svg .lane{{font-weight:bold;font-family:sans-serif}} section{{margin-top:2em}}</style></head>\n<body><h1>cardrenew conformance</h1>\n<p id=\"summary\">{} scenarios, {} as expected, {failed} unexpected (seed {seed})</p>\n<table><tr><th>scenario</th><th>expected</th><th>observed</th><th>PIN prompts</th><th>containers before/after</th><th>ms</th></tr>\n",
        results.len(),
        results.len() - failed
    );
    for r in results {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td><a href=\"#{}\">{}</a></td><td>{:?}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
            if r.passed() { "ok" } else { "bad" },
            html_escape(&r.name),
            html_escape(&r.name),
            r.expected,
            r.observed
                .map(|o| format!("{o:?}"))
                .unwrap_or_else(|| "-".into()),
            r.prompts,
            r.containers.0,
            r.containers.1,
            r.millis
        );
    }
    out.push_str("</table>\n");
    for r in results {
        let _ = writeln!(
            out,
            "<section class=\"scenario\" id=\"{0}\"><h2>{0}</h2><p>expected {1}, observed {2}{3}</p>\n{4}\n</section>",
            html_escape(&r.name),
            r.expected,
            r.observed
                .map(|o| o.to_string())
                .unwrap_or_else(|| "-".into()),
            r.problem
                .as_ref()
                .map(|p| format!(" — <b class=\"bad\">{}</b>", html_escape(p)))
                .unwrap_or_default(),
            sequence_svg(r)
        );
    }
    out.push_str("</body></html>\n");
    out
}
