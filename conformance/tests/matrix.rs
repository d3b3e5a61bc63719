//! The default matrix, in the test suite: every scenario behaves as it states, the matrix
//! covers what the runner promises, and names are unique (reports key on them).

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use conformance::{matrix::default_matrix, runner};

#[test]
fn the_default_matrix_runs_green() {
    let matrix = default_matrix();
    assert!(matrix.len() >= 150, "{} scenarios", matrix.len());
    let mut names: Vec<_> = matrix.iter().map(|s| s.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), matrix.len(), "scenario names are unique");
    for area in [
        "ca/", "adcs/", "net/", "card/", "pin/", "crash/", "rsa2048/",
    ] {
        for mode in ["/fullcmc", "/cmc", "/simplereenroll", "/wstep", "/cmp"] {
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with(area) && n.ends_with(mode)),
                "{area}*{mode}"
            );
        }
    }
    let results: Vec<_> = matrix.iter().map(|s| runner::run(s, 1)).collect();
    // The scenarios that did not behave, by name and why, before anything else is judged.
    let failures: Vec<_> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{}: {}", r.name, r.problem.clone().unwrap_or_default()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // The reports carry every scenario.
    let dir = std::env::temp_dir().join(format!("cardrenew-report-{}", std::process::id()));
    conformance::report::write(&dir, &results, 1).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["scenarios"].as_array().unwrap().len(), matrix.len());
    // One PIN prompt at most — but for a PIN-always key, which costs a prompt per signature
    // by its own policy (the runner checks each scenario's declared count).
    assert!(
        json["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["name"].as_str().unwrap_or("").starts_with("pin/always/"))
            .all(|s| s["pin_prompts"].as_u64() <= Some(1))
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), matrix.len());
    assert!(junit.contains("failures=\"0\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same matrix against an EC CA (the default CA is RSA-2048, as ADCS): P-256 and P-384
/// CA keys, every scenario as stated. The responses and certificates are signed with the CA's
/// key type, which the client checks like any other.
#[test]
fn the_default_matrix_runs_green_against_ec_cas() {
    use renewal_client::token::KeyAlgorithm;
    for (key, filter) in [
        (KeyAlgorithm::EcP256, ""),
        (KeyAlgorithm::EcP384, "/fullcmc"),
    ] {
        let matrix: Vec<_> = conformance::matrix::with_ca_key(default_matrix(), key)
            .into_iter()
            .filter(|s| s.name.contains(filter))
            .collect();
        assert!(matrix.iter().all(|s| s.ca.starts_with("ca_key = ")));
        let failures: Vec<_> = matrix
            .iter()
            .map(|s| runner::run(s, 1))
            .filter(|r| !r.passed())
            .map(|r| format!("{key}: {}: {}", r.name, r.problem.unwrap_or_default()))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}

#[test]
fn scenario_files_load_and_run() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/example.toml"
    ))
    .unwrap();
    let scenarios = conformance::scenario_file::parse(&text).unwrap();
    assert_eq!(scenarios.len(), 4);
    for s in &scenarios {
        let r = runner::run(s, 1);
        assert!(r.passed(), "{}: {:?}", s.name, r.problem);
    }
    let bad = "[[scenario]]\nname = \"x\"\nexpected = \"renewed\"\nmode = \"fax\"\n";
    assert_eq!(
        conformance::scenario_file::parse(bad).unwrap_err(),
        "x: mode \"fax\": fullcmc, cmc, simplereenroll, wstep or cmp"
    );
    let bad_ca = "[[scenario]]\nname = \"y\"\nexpected = \"renewed\"\nca = \"[[rule]]\\ndisposition = \\\"maybe\\\"\\n\"\n";
    assert!(
        conformance::scenario_file::parse(bad_ca)
            .unwrap_err()
            .contains("unknown disposition \"maybe\"")
    );
}
