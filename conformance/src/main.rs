//! `conformance`: runs the scenario matrix against the simulators (sim-ca over loopback mutual
//! TLS, in-process sim-cards) and reports. Exit 0 when every scenario behaves as stated, 1
//! otherwise, 2 on bad arguments or when the run could not start.
//!
//! Interop mode: `--token pkcs11:…` runs the matrix on a real PKCS#11 token with the simulated
//! CA; `--ca URL --ca-cert PEM --token SPEC [--container ID]` runs it against an external CA
//! with a token that holds a certificate from it.
#![forbid(unsafe_code)]

use std::{io::Write, path::PathBuf, process::ExitCode};

use conformance::{report, runner};

struct Args {
    filter: Option<String>,
    seed: u64,
    list: bool,
    report: Option<PathBuf>,
    scenarios: Option<PathBuf>,
    token: Option<String>,
    pin_env: Option<String>,
    ca: Option<String>,
    ca_cert: Option<PathBuf>,
    container: Option<String>,
    modes: Option<String>,
    management_key: Option<String>,
    ca_key: Option<renewal_client::token::KeyAlgorithm>,
    gateway: Option<conformance::harness::GatewayRoute>,
}

const USAGE: &str = "usage: conformance [run] [--scenarios FILE.toml] [--filter SUBSTRING] [--seed N] [--list]
                   [--report DIR] [--ca-key rsa2048|rsa3072|rsa4096|p256|p384]
                   [--gateway [fullcmc|cmc|ces|local]]
                   [--token pkcs11:MODULE[:LABEL] [--pin-env VAR]]
                   [--ca URL --ca-cert PEM --token sim:CARD.json|piv-pcsc[:READER]|pkcs11:MODULE[:LABEL]
                    [--container ID] [--modes fullcmc,cmc,simplereenroll] [--pin-env VAR]
                    [--management-key HEX]]
       conformance load [--clients N] [--duration SECS] [--kill-every SECS] [--mode MODE] [--prefill N]
                        [--ca-key rsa2048|p256|...] [--gateways N [--store postgres://...]]
                        [--ca-store postgres://...] [--retries N] [--seed N] [--sim-ca PATH]
                        [--postgres DIR [--store-restart-every SECS] [--store-outage SECS]
                                        [--store-terminate-every SECS]]
       conformance phases [--mode MODE] [--key p256|rsa2048] [--runs N] [--apdu-ms MS]
                          [--keygen-ms MS] [--sign-ms MS]";

fn args() -> Result<Args, String> {
    let mut a = Args {
        filter: None,
        seed: 1,
        list: false,
        report: None,
        scenarios: None,
        token: None,
        pin_env: None,
        ca: None,
        ca_cert: None,
        container: None,
        modes: None,
        management_key: None,
        ca_key: None,
        gateway: None,
    };
    let mut it = std::env::args().skip(1).peekable();
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
            "--token" => {
                a.token =
                    Some(it.next().ok_or(
                        "--token needs sim:FILE, piv-pcsc[:READER] or pkcs11:MODULE[:LABEL]",
                    )?)
            }
            "--pin-env" => a.pin_env = Some(it.next().ok_or("--pin-env needs a variable name")?),
            "--ca" => a.ca = Some(it.next().ok_or("--ca needs the CA's base URL")?),
            "--ca-cert" => {
                a.ca_cert = Some(it.next().ok_or("--ca-cert needs a PEM bundle")?.into())
            }
            "--container" => {
                a.container = Some(it.next().ok_or("--container needs a container id")?)
            }
            "--modes" => a.modes = Some(it.next().ok_or("--modes needs a list")?),
            "--ca-key" => {
                a.ca_key = Some(
                    it.next()
                        .ok_or("--ca-key needs a key type")?
                        .parse()
                        .map_err(|e| format!("--ca-key: {e}"))?,
                )
            }
            "--gateway" => {
                use conformance::harness::GatewayRoute;
                use sim_ca::gateway::upstream::CmcProtocol;
                a.gateway = Some(GatewayRoute::Network(CmcProtocol::Fullcmc));
                if let Some(next) = it.peek()
                    && let Some(route) = match next.as_str() {
                        "fullcmc" => Some(GatewayRoute::Network(CmcProtocol::Fullcmc)),
                        "cmc" => Some(GatewayRoute::Network(CmcProtocol::Cmc)),
                        "ces" => Some(GatewayRoute::Network(CmcProtocol::Ces)),
                        "local" => Some(GatewayRoute::InProcess),
                        _ => None,
                    }
                {
                    a.gateway = Some(route);
                    it.next();
                }
            }
            "--management-key" => {
                a.management_key = Some(it.next().ok_or("--management-key needs 48 hex digits")?)
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(a)
}

/// `conformance load ...`: concurrent renewals against `sim-ca serve`, killed with SIGKILL at
/// random moments; exit 1 when any invariant broke.
fn load(mut it: impl Iterator<Item = String>) -> ExitCode {
    use conformance::load::{LoadConfig, run, sim_ca_next_to};
    let mut parse = || -> Result<LoadConfig, String> {
        let mut c = LoadConfig {
            sim_ca: std::env::current_exe()
                .ok()
                .and_then(|e| sim_ca_next_to(&e))
                .unwrap_or_else(|| PathBuf::from("sim-ca")),
            clients: 8,
            duration: std::time::Duration::from_secs(30),
            kill_every: Some(std::time::Duration::from_secs(3)),
            mode: renewal_client::client::Mode::FullCmc,
            seed: 1,
            min_kills: 1,
            prefill: 0,
            retries: renewal_client::client::processor::RetryPolicy::default().attempts,
            ca_key: renewal_client::token::KeyAlgorithm::Rsa2048,
            gateways: 0,
            gateway_store: None,
            ca_store: None,
            store_faults: conformance::load::StoreFaults {
                outage: std::time::Duration::from_secs(2),
                ..Default::default()
            },
        };
        let secs = |v: Option<String>, what: &str| -> Result<std::time::Duration, String> {
            v.ok_or(format!("{what} needs seconds"))?
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0 && s.is_finite())
                .map(std::time::Duration::from_secs_f64)
                .ok_or(format!("{what}: not a number of seconds"))
        };
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--clients" => {
                    c.clients = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--clients needs a positive number")?
                }
                "--duration" => c.duration = secs(it.next(), "--duration")?,
                "--kill-every" => {
                    let every = secs(it.next(), "--kill-every")?;
                    c.kill_every = (!every.is_zero()).then_some(every);
                }
                "--mode" => {
                    c.mode = it
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| format!("--mode: {e}"))?
                }
                "--ca-key" => {
                    c.ca_key = it
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| format!("--ca-key: {e}"))?
                }
                "--seed" => {
                    c.seed = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--seed needs a number")?
                }
                "--sim-ca" => c.sim_ca = it.next().ok_or("--sim-ca needs a path")?.into(),
                "--gateways" => {
                    c.gateways = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--gateways needs a number")?
                }
                "--store" => c.gateway_store = Some(it.next().ok_or("--store needs a URL")?),
                "--ca-store" => c.ca_store = Some(it.next().ok_or("--ca-store needs a URL")?),
                "--postgres" => {
                    c.store_faults.cluster =
                        Some(it.next().ok_or("--postgres needs a directory")?.into())
                }
                "--store-restart-every" => {
                    let every = secs(it.next(), "--store-restart-every")?;
                    c.store_faults.restart_every = (!every.is_zero()).then_some(every);
                }
                "--store-outage" => c.store_faults.outage = secs(it.next(), "--store-outage")?,
                "--store-terminate-every" => {
                    let every = secs(it.next(), "--store-terminate-every")?;
                    c.store_faults.terminate_every = (!every.is_zero()).then_some(every);
                }
                "--retries" => {
                    c.retries = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--retries needs a number")?
                }
                "--prefill" => {
                    c.prefill = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--prefill needs a number of certificates")?
                }
                other => return Err(format!("unknown argument {other:?} (see --help)")),
            }
        }
        Ok(c)
    };
    let config = match parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conformance load: {e}");
            return ExitCode::from(2);
        }
    };
    let every = |d: Option<std::time::Duration>| {
        d.map_or("never".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
    };
    eprintln!(
        "conformance load: {} clients for {:.0} s against {}, SIGKILL every ~{}, store crash every ~{}, backends terminated every ~{}",
        config.clients,
        config.duration.as_secs_f64(),
        config.sim_ca.display(),
        every(config.kill_every),
        every(config.store_faults.restart_every),
        every(config.store_faults.terminate_every),
    );
    match run(&config) {
        Ok(report) => {
            print!("{}", report.render());
            if report.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("conformance load: {e}");
            ExitCode::from(2)
        }
    }
}

/// `conformance phases ...`: where the time of one renewal goes, measured and with a real
/// card's timings.
fn phases(mut it: impl Iterator<Item = String>) -> ExitCode {
    use conformance::phases::{CardModel, phases};
    use renewal_client::{client::Mode, token::KeyAlgorithm};
    let mut parse = || -> Result<_, String> {
        let (mut mode, mut key, mut runs) = (Mode::FullCmc, KeyAlgorithm::EcP256, 5);
        let mut overrides: [Option<u64>; 3] = [None; 3];
        let number = |v: Option<String>, what: &str| -> Result<u64, String> {
            v.and_then(|n| n.parse().ok())
                .ok_or(format!("{what} needs a number"))
        };
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--mode" => {
                    mode = match it.next().as_deref() {
                        Some("fullcmc") => Mode::FullCmc,
                        Some("cmc") => Mode::Cmc,
                        Some("simplereenroll") => Mode::SimpleReenroll,
                        Some("wstep") => Mode::Wstep,
                        Some("cmp") => Mode::Cmp,
                        _ => {
                            return Err(
                                "--mode is fullcmc, cmc, simplereenroll, wstep or cmp".into()
                            );
                        }
                    }
                }
                "--key" => {
                    key = it
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| format!("--key: {e}"))?;
                }
                "--runs" => runs = number(it.next(), "--runs")? as usize,
                "--apdu-ms" => overrides[0] = Some(number(it.next(), "--apdu-ms")?),
                "--keygen-ms" => overrides[1] = Some(number(it.next(), "--keygen-ms")?),
                "--sign-ms" => overrides[2] = Some(number(it.next(), "--sign-ms")?),
                other => return Err(format!("unknown argument {other:?} (see --help)")),
            }
        }
        let mut model = CardModel::typical(key);
        let ms = std::time::Duration::from_millis;
        if let Some(v) = overrides[0] {
            model.per_apdu = ms(v);
        }
        if let Some(v) = overrides[1] {
            model.keygen = ms(v);
        }
        if let Some(v) = overrides[2] {
            model.sign = ms(v);
        }
        Ok((mode, key, runs, model))
    };
    let (mode, key, runs, model) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("conformance phases: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "conformance phases: {mode:?}, {key:?}, {runs} renewals; real card: {} ms per APDU, key generation +{} ms, signature +{} ms",
        model.per_apdu.as_millis(),
        model.keygen.as_millis(),
        model.sign.as_millis()
    );
    match phases(mode, key, runs, model) {
        Ok(report) => {
            print!("{}", report.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conformance phases: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("load") => return load(std::env::args().skip(2)),
        Some("phases") => return phases(std::env::args().skip(2)),
        _ => {}
    }
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("conformance: {e}");
            return ExitCode::from(2);
        }
    };
    // `--gateway`: every scenario through a renewal gateway in front of the simulated CA:
    // faults and dispositions happen at the upstream, the outcome the client sees must not
    // change (but for what the gateway's CMC leg adds, which the default matrix knows).
    let matrix = match &args.scenarios {
        None => conformance::matrix::default_matrix_via(args.gateway),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| conformance::scenario_file::parse(&t))
        {
            Ok(m) => m
                .into_iter()
                .map(|s| conformance::matrix::Scenario {
                    gateway: args.gateway,
                    ..s
                })
                .collect(),
            Err(e) => {
                eprintln!("conformance: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let matrix = match args.ca_key {
        Some(key) => conformance::matrix::with_ca_key(matrix, key),
        None => matrix,
    };
    let scenarios: Vec<_> = matrix
        .into_iter()
        .filter(|s| args.filter.as_deref().is_none_or(|f| s.name.contains(f)))
        .collect();
    if args.list {
        // Written, not printed: `--list | head` closes the pipe early, which is not an error.
        let mut out = std::io::stdout().lock();
        for s in &scenarios {
            if writeln!(out, "{}  (expect {})", s.name, s.expected).is_err() {
                break;
            }
        }
        return ExitCode::SUCCESS;
    }
    let started = std::time::Instant::now();
    // A bar redrawn in place on a terminal; in a CI log it would be noise (the table follows).
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = |i: usize, name: &str| {
        if terminal {
            eprint!("\r{}", progress_line(i, scenarios.len(), name));
            let _ = std::io::stderr().flush();
        }
    };
    let results = match (&args.ca, &args.token) {
        (Some(_), _) => match external(&scenarios, &args, progress) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("\nconformance: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                progress(i, &s.name);
                runner::run(s, args.seed)
            })
            .collect::<Vec<_>>(),
        (None, Some(spec)) => match interop(&scenarios, spec, args.pin_env.as_deref(), progress) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("\nconformance: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if terminal {
        eprint!("\r{:<100}\r", "");
    }
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

/// `[=========>          ]  45/156  card/install-fails/cmc`: the bar for scenario `i` of `n`.
fn progress_line(i: usize, n: usize, name: &str) -> String {
    const WIDTH: usize = 30;
    let done = (i * WIDTH).checked_div(n).unwrap_or(0).min(WIDTH);
    let bar = format!("{}>{}", "=".repeat(done), " ".repeat(WIDTH - done));
    format!("[{bar}] {:>3}/{n}  {name:<50.50}", i + 1)
}

/// The PIN from `--pin-env VAR`, or the simulators' PIN.
fn pin(pin_env: Option<&str>) -> Result<zeroize::Zeroizing<String>, String> {
    match pin_env {
        Some(var) => std::env::var(var)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| format!("environment variable {var} is not set")),
        None => Ok(zeroize::Zeroizing::new("123456".to_string())),
    }
}

/// Interop against an external CA: the token holding a certificate from it is required.
fn external(
    scenarios: &[conformance::matrix::Scenario],
    args: &Args,
    progress: impl Fn(usize, &str),
) -> Result<Vec<runner::Result>, String> {
    use conformance::{harness::ExternalCa, interop};
    use renewal_client::{
        client::{Mode, https::read_trust_anchors},
        token::{ContainerId, piv::ManagementKey, spec::TokenSpec},
    };
    let base_url = args.ca.clone().ok_or("--ca is missing")?;
    if !base_url.starts_with("https://") {
        return Err(format!(
            "--ca {base_url:?}: the CA is reached over https://"
        ));
    }
    let chain = args
        .ca_cert
        .as_ref()
        .ok_or("--ca needs --ca-cert PEM: the CA certificates to trust")?;
    let anchors = read_trust_anchors(chain).map_err(|e| e.to_string())?;
    let token: TokenSpec = args
        .token
        .as_deref()
        .ok_or(
            "an external CA renews the certificates it issued: give the token holding one \
             (--token sim:CARD.json | piv-pcsc[:READER] | pkcs11:MODULE[:LABEL], --container ID)",
        )?
        .parse()
        .map_err(|e| format!("--token {e}"))?;
    let container = match (&args.container, &token) {
        (Some(c), _) => c.clone(),
        (None, TokenSpec::Pkcs11 { .. }) => {
            return Err(
                "--container ID: which PKCS#11 key holds the certificate (CKA_ID, hex)".into(),
            );
        }
        (None, _) => "9a".into(),
    };
    let modes = match &args.modes {
        None => vec![Mode::FullCmc, Mode::Cmc, Mode::SimpleReenroll],
        Some(list) => list
            .split(',')
            .map(|m| m.trim().parse::<Mode>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--modes: {e}"))?,
    };
    let management_key = match &args.management_key {
        None => ManagementKey::Auto,
        Some(text) => ManagementKey::parse(text).map_err(|e| format!("--management-key: {e}"))?,
    };
    let run = interop::ExternalRun {
        ca: ExternalCa { base_url, anchors },
        token,
        container: ContainerId(container),
        modes,
        pin: pin(args.pin_env.as_deref())?,
        management_key,
    };
    interop::run_external(scenarios, &run, progress)
}

#[cfg(feature = "pkcs11")]
fn interop(
    scenarios: &[conformance::matrix::Scenario],
    spec: &str,
    pin_env: Option<&str>,
    progress: impl Fn(usize, &str),
) -> Result<Vec<runner::Result>, String> {
    conformance::interop::run_pkcs11(scenarios, spec, &pin(pin_env)?, progress)
}

#[cfg(not(feature = "pkcs11"))]
fn interop(
    _: &[conformance::matrix::Scenario],
    _: &str,
    pin_env: Option<&str>,
    _: impl Fn(usize, &str),
) -> Result<Vec<runner::Result>, String> {
    pin(pin_env)?;
    Err(
        "this conformance was built without PKCS#11 support: rebuild with `--features pkcs11`"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_progress_bar_fills_as_scenarios_run() {
        let first = super::progress_line(0, 156, "ca/issue/fullcmc");
        let last = super::progress_line(155, 156, "rsa2048/deny/simplereenroll");
        assert!(first.starts_with("[>    "), "{first}");
        assert!(first.contains("  1/156  ca/issue/fullcmc"), "{first}");
        assert!(
            last.starts_with("[=============================>"),
            "{last}"
        );
        assert!(last.contains("156/156"), "{last}");
        assert_eq!(first.find(']'), last.find(']'), "the bar keeps its width");
    }
}
