//! `conformance`: runs the scenario matrix against the simulators (sim-ca over loopback mutual
//! TLS, in-process sim-cards) and reports. Exit 0 when every scenario behaves as stated, 1
//! otherwise.
#![forbid(unsafe_code)]

use std::{io::Write, path::PathBuf, process::ExitCode};

use conformance::{matrix::default_matrix, report, runner};

struct Args {
    filter: Option<String>,
    seed: u64,
    list: bool,
    report: Option<PathBuf>,
    scenarios: Option<PathBuf>,
    token: Option<String>,
    pin_env: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        filter: None,
        seed: 1,
        list: false,
        report: None,
        scenarios: None,
        token: None,
        pin_env: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "run" => {}
            "--list" => a.list = true,
            "--filter" => a.filter = Some(it.next().ok_or("--filter needs a substring")?),
            "--seed" => {
                a.seed = it
                    .next()
                    .ok_or("--seed needs a number")?
                    .parse()
                    .map_err(|_| "--seed: not a number")?
            }
            "--report" => a.report = Some(it.next().ok_or("--report needs a directory")?.into()),
            "--scenarios" => {
                a.scenarios = Some(it.next().ok_or("--scenarios needs a TOML file")?.into())
            }
            "--token" => a.token = Some(it.next().ok_or("--token needs pkcs11:MODULE[:LABEL]")?),
            "--pin-env" => a.pin_env = Some(it.next().ok_or("--pin-env needs a variable name")?),
            "--ca" | "--ca-cert" => {
                return Err(
                    "interop against an external CA is not implemented yet (see the README); \
                            --token runs the matrix on a real PKCS#11 token with the simulated CA"
                        .into(),
                );
            }
            "-h" | "--help" => {
                println!(
                    "usage: conformance [run] [--scenarios FILE.toml] [--filter SUBSTRING] [--seed N] [--list]\n                   [--report DIR] [--token pkcs11:MODULE[:LABEL] [--pin-env VAR]]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let matrix = match &args.scenarios {
        None => default_matrix(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| conformance::scenario_file::parse(&t))
        {
            Ok(m) => m,
            Err(e) => {
                eprintln!("conformance: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let scenarios: Vec<_> = matrix
        .into_iter()
        .filter(|s| args.filter.as_deref().is_none_or(|f| s.name.contains(f)))
        .collect();
    if args.list {
        for s in &scenarios {
            println!("{}  (expect {:?})", s.name, s.expected);
        }
        return ExitCode::SUCCESS;
    }
    let started = std::time::Instant::now();
    let progress = |i: usize, name: &str| {
        eprint!("\r[{:>3}/{}] {:<60}", i + 1, scenarios.len(), name);
        let _ = std::io::stderr().flush();
    };
    let results = match &args.token {
        None => scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                progress(i, &s.name);
                runner::run(s, args.seed)
            })
            .collect::<Vec<_>>(),
        Some(spec) => match interop(&scenarios, spec, args.pin_env.as_deref(), progress) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("\nconformance: {e}");
                return ExitCode::from(2);
            }
        },
    };
    eprintln!("\r{:<80}", "");
    print!("{}", report::table(&results));
    let failed = results.iter().filter(|r| !r.passed()).count();
    let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
    if skipped > 0 {
        println!("\n{skipped} scenarios skipped (interop mode; reasons in the table)");
    }
    println!(
        "\n{} scenarios, {} as expected, {failed} unexpected, {:.1} s (seed {})",
        results.len() - skipped,
        results.len() - skipped - failed,
        started.elapsed().as_secs_f64(),
        args.seed
    );
    if let Some(dir) = &args.report {
        if let Err(e) = report::write(dir, &results, args.seed) {
            eprintln!("conformance: writing the report: {e}");
            return ExitCode::from(1);
        }
        println!(
            "reports: {0}/report.json, {0}/junit.xml, {0}/index.html",
            dir.display()
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(feature = "pkcs11")]
fn interop(
    scenarios: &[conformance::matrix::Scenario],
    spec: &str,
    pin_env: Option<&str>,
    progress: impl Fn(usize, &str),
) -> Result<Vec<runner::Result>, String> {
    let pin = match pin_env {
        Some(var) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
        }
        None => "123456".to_string(),
    };
    conformance::interop::run_pkcs11(scenarios, spec, &pin, progress)
}

#[cfg(not(feature = "pkcs11"))]
fn interop(
    _: &[conformance::matrix::Scenario],
    _: &str,
    _: Option<&str>,
    _: impl Fn(usize, &str),
) -> Result<Vec<runner::Result>, String> {
    Err(
        "this conformance was built without PKCS#11 support: rebuild with `--features pkcs11`"
            .into(),
    )
}
