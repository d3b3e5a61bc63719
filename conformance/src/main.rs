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
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        filter: None,
        seed: 1,
        list: false,
        report: None,
        scenarios: None,
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
            "-h" | "--help" => {
                println!(
                    "usage: conformance [run] [--filter SUBSTRING] [--seed N] [--list] [--report DIR]"
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
    let mut results = Vec::with_capacity(scenarios.len());
    for (i, s) in scenarios.iter().enumerate() {
        eprint!("\r[{:>3}/{}] {:<60}", i + 1, scenarios.len(), s.name);
        let _ = std::io::stderr().flush();
        results.push(runner::run(s, args.seed));
    }
    eprintln!("\r{:<80}", "");
    print!("{}", report::table(&results));
    let failed = results.iter().filter(|r| !r.passed()).count();
    println!(
        "\n{} scenarios, {} as expected, {failed} unexpected, {:.1} s (seed {})",
        results.len(),
        results.len() - failed,
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
