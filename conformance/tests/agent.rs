//! `renew check` / `renew agent status` with the real binaries: a virtual card enrolled at
//! `sim-ca serve`, tracked by an agent configuration. Nothing is due at first; at a time past
//! the renewal threshold (`--now +300d`) the card is renewed, the hook runs with the new
//! certificate's facts, and the schedule moves to the new certificate; a CA that refuses leaves
//! the entry stuck with the CA's reason and the old certificate in place, and is not asked
//! again before the retry time; a missing card is "card absent".

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use common::{bin, enroll_virtual_card, ok};

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cardrenew-agent-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_config(dir: &Path, port: u16, token: &str) -> PathBuf {
    let pin = dir.join("pin");
    std::fs::write(&pin, "123456\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "state"

[[certificate]]
name = "alice"
token = "{token}"
container = "9a"
ca = "https://localhost:{port}"
ca_cert = "ca/ca-chain.pem"
pin_file = "pin"
post_renew = ["/bin/sh", "-c", "env | grep ^CARDRENEW_ | sort > renewed.env"]
on_failure = ["/bin/sh", "-c", "env | grep ^CARDRENEW_ | sort > failed.env"]
"#
        ),
    )
    .unwrap();
    config
}

/// A card enrolled in a fresh `dir`, a CA serving `scenario` (TOML; `None`: issue), and the
/// agent configuration tracking 9A.
fn fixture(tag: &str, scenario: Option<&str>) -> (PathBuf, common::Served, PathBuf) {
    let dir = temp(tag);
    enroll_virtual_card(&dir);
    let scenario = scenario.map(|text| {
        let path = dir.join("scenario.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let (ca, port) = common::serve_ca(&dir.join("ca"), scenario.as_deref());
    let config = write_config(
        &dir,
        port,
        &format!("sim:{}", dir.join("card.json").display()),
    );
    (dir, ca, config)
}

fn check(dir: &Path, config: &Path, now: Option<&str>) -> Output {
    let mut cmd = bin("renew");
    cmd.current_dir(dir)
        .arg("check")
        .arg("--config")
        .arg(config);
    if let Some(now) = now {
        cmd.args(["--now", now]);
    }
    cmd.output().unwrap()
}

fn status(config: &Path) -> serde_json::Value {
    let out = ok(bin("renew")
        .args(["agent", "status", "--json", "--config"])
        .arg(config));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

fn card_serial(dir: &Path) -> String {
    let shown = ok(bin("sim-card")
        .args(["show", "--state"])
        .arg(dir.join("card.json")));
    shown.to_string()
}

#[test]
fn check_renews_when_due_runs_the_hook_and_reschedules() {
    let (dir, _ca, config) = fixture("due", None);

    // A new one-year certificate: nothing due; the next action is ~8 months away.
    let out = check(&dir, &config, None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let first = status(&config);
    assert_eq!(first["state"], "monitoring", "{first}");
    let serial = first["serial"].as_str().unwrap().to_string();
    // ISO 8601 UTC strings order as times: renewal is scheduled before expiry.
    assert!(first["next_action"].as_str().unwrap() < first["not_after"].as_str().unwrap());
    let before = card_serial(&dir);

    // 300 days later the remaining third of the lifetime has begun: renewed, exit 10.
    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    let renewed = status(&config);
    assert_eq!(renewed["state"], "monitoring", "{renewed}");
    assert_ne!(renewed["serial"].as_str().unwrap(), serial, "{renewed}");
    assert_ne!(
        card_serial(&dir),
        before,
        "the card holds a new certificate"
    );
    let env = std::fs::read_to_string(dir.join("renewed.env")).unwrap();
    assert!(env.contains("CARDRENEW_NAME=alice"), "{env}");
    assert!(
        env.contains(&format!(
            "CARDRENEW_SERIAL={}",
            renewed["serial"].as_str().unwrap()
        )),
        "{env}"
    );
    let pem_line = env
        .lines()
        .find_map(|l| l.strip_prefix("CARDRENEW_CERT="))
        .unwrap();
    let pem = std::fs::read_to_string(pem_line).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(env.contains("CARDRENEW_NOT_AFTER="), "{env}");

    // The next day: the new certificate (issued today, for a year) is not due.
    let out = check(&dir, &config, Some("+1d"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!dir.join("failed.env").exists());
}

#[test]
fn a_refusal_leaves_the_entry_stuck_with_the_reason_and_the_old_certificate() {
    let (dir, _ca, config) = fixture("stuck", Some("[[rule]]\ndisposition = \"deny\"\n"));
    let before = card_serial(&dir);

    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stuck = status(&config);
    assert_eq!(stuck["state"], "stuck", "{stuck}");
    assert!(
        stuck["last_error"]
            .as_str()
            .unwrap()
            .starts_with("the CA refused"),
        "{stuck}"
    );
    assert_eq!(card_serial(&dir), before, "the old certificate stays");
    let env = std::fs::read_to_string(dir.join("failed.env")).unwrap();
    assert!(env.contains("CARDRENEW_STATE=stuck"), "{env}");
    assert!(env.contains("CARDRENEW_ERROR=the CA refused"), "{env}");

    // Asked again at once: still stuck, and the CA is not contacted (no new failure).
    std::fs::remove_file(dir.join("failed.env")).unwrap();
    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(status(&config)["failures"], stuck["failures"]);
    assert!(!dir.join("failed.env").exists());
}

/// A CA whose template now adds a purpose (an administrator added serverAuth) issues, on every
/// attempt, a certificate that is not the renewed one. The agent refuses to install it and
/// waits as after a refusal — stuck, not backing off by minutes — so the CA is not made to
/// issue one more certificate that is never installed at every retry.
#[test]
fn a_certificate_that_is_not_a_renewal_leaves_the_entry_stuck_and_the_ca_is_not_asked_again() {
    let scenario = format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\n\
         extended_key_usage = [\"clientAuth\", \"smartcardLogon\", \"serverAuth\"]\n",
        renewal_client::sample::SAMPLE_TEMPLATE_OID
    );
    let (dir, _ca, config) = fixture("not-a-renewal", Some(&scenario));
    let before = card_serial(&dir);
    let issued = || {
        ok(bin("sim-ca").args(["audit", "--state"]).arg(dir.join("ca")))
            .lines()
            .filter(|l| l.contains("issued"))
            .count()
    };
    let enrolled = issued();

    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stuck = status(&config);
    assert_eq!(stuck["state"], "stuck", "{stuck}");
    let error = stuck["last_error"].as_str().unwrap();
    assert!(error.contains("not a renewal"), "{stuck}");
    assert!(error.contains("extendedKeyUsage"), "{stuck}");
    assert_eq!(card_serial(&dir), before, "the old certificate stays");
    assert_eq!(
        issued(),
        enrolled + 1,
        "one certificate issued, not installed"
    );

    // An hour later — past any backoff of minutes — the CA is not asked again.
    let out = check(&dir, &config, Some("+7201h"));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(status(&config)["failures"], stuck["failures"]);
    assert_eq!(issued(), enrolled + 1, "no second certificate");
}

#[test]
fn a_missing_card_is_card_absent_and_a_readable_pin_file_is_refused() {
    let dir = temp("absent");
    let config = write_config(
        &dir,
        9,
        &format!("sim:{}", dir.join("no-card.json").display()),
    );
    let out = check(&dir, &config, None);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(status(&config)["state"], "card absent");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        enroll_virtual_card(&dir);
        let config = write_config(&dir, 9, &format!("sim:{}", dir.join("card.json").display()));
        std::fs::set_permissions(dir.join("pin"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let _ = std::fs::remove_dir_all(dir.join("state"));
        let out = check(&dir, &config, Some("+300d"));
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        let s = status(&config);
        assert!(
            s["last_error"].as_str().unwrap().contains("chmod 600"),
            "{s}"
        );
    }
}

#[test]
fn a_wrong_pin_is_never_retried_automatically() {
    let (dir, _ca, config) = fixture("pin", None);
    std::fs::write(dir.join("pin"), "999999\n").unwrap();
    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let s = status(&config);
    println!("{s}");
    assert_eq!(s["state"], "stuck", "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .starts_with("wrong PIN, 2 tries left; not retried automatically"),
        "{s}"
    );
    // Checked again, even much later: the card is not asked again with the same PIN.
    let tries_before = ok(bin("sim-card")
        .args(["show", "--state"])
        .arg(dir.join("card.json")));
    let out = check(&dir, &config, Some("+340d"));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let tries_after = ok(bin("sim-card")
        .args(["show", "--state"])
        .arg(dir.join("card.json")));
    assert_eq!(tries_before, tries_after, "the card was not touched");
    assert_eq!(status(&config)["pin_refused"], true);

    // Fixed, and asked to retry: renewed.
    std::fs::write(dir.join("pin"), "123456\n").unwrap();
    let out = check_with(&dir, &config, &["--now", "+300d", "--retry"]);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert_eq!(status(&config)["state"], "monitoring");
}

fn check_with(dir: &Path, config: &Path, args: &[&str]) -> Output {
    bin("renew")
        .current_dir(dir)
        .arg("check")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn a_pinentry_is_asked_once_with_the_certificate_named() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _ca, config) = fixture("pinentry", None);
    // A pinentry speaking Assuan, logging what it is told, answering 123456.
    let fake = dir.join("pinentry-fake");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho OK\nwhile read -r cmd rest; do\n  echo \"$cmd $rest\" >> \"{}\"\n  case \"$cmd\" in\n    GETPIN) echo 'D 123456'; echo OK ;;\n    BYE) echo OK; exit 0 ;;\n    *) echo OK ;;\n  esac\ndone\n",
            dir.join("pinentry.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "pin_file = \"pin\"",
        &format!("pinentry = \"{}\"", fake.display()),
    );
    std::fs::write(&config, text).unwrap();

    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    let log = std::fs::read_to_string(dir.join("pinentry.log")).unwrap();
    assert_eq!(
        log.matches("GETPIN").count(),
        1,
        "one prompt per renewal: {log}"
    );
    assert!(
        log.contains("SETDESC cardrenew is renewing the certificate \"alice\" (container 9a)"),
        "{log}"
    );
}

#[test]
fn expiry_warnings_fire_once_per_threshold() {
    // A CA that refuses: the certificate runs towards its end.
    let (dir, _ca, config) = fixture("warn", Some("[[rule]]\ndisposition = \"deny\"\n"));
    let text = std::fs::read_to_string(&config).unwrap()
        + "on_warning = [\"/bin/sh\", \"-c\", \"echo $CARDRENEW_REMAINING_DAYS >> warnings.txt\"]\n";
    std::fs::write(&config, text).unwrap();
    let warnings = || std::fs::read_to_string(dir.join("warnings.txt")).unwrap_or_default();

    check_with(&dir, &config, &["--now", "+300d"]);
    assert_eq!(warnings(), "", "65 days left: no warning yet");
    check_with(&dir, &config, &["--now", "+340d", "--retry"]);
    assert_eq!(warnings().lines().count(), 1, "{}", warnings());
    check_with(&dir, &config, &["--now", "+341d", "--retry"]);
    assert_eq!(
        warnings().lines().count(),
        1,
        "the 28-day warning is given once"
    );
    check_with(&dir, &config, &["--now", "+360d", "--retry"]);
    let all = warnings();
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(
        all.lines().last().unwrap().parse::<u32>().unwrap() < 7,
        "{all}"
    );
}

#[test]
fn a_pending_request_waits_for_the_cas_retry_after_and_is_collected_later() {
    let (dir, _ca, config) = fixture(
        "pending",
        Some("[[rule]]\ndisposition = \"pending\"\nresolve = \"after:7200\"\n"),
    );

    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let pending = status(&config);
    assert_eq!(pending["state"], "pending", "{pending}");
    // Next action: at least the CA's Retry-After (~2 h) after the check's "now".
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/agent-state.json")).unwrap())
            .unwrap();
    let entry = &state["entries"]["alice"];
    let wait = entry["next_action"].as_i64().unwrap() - entry["last_check"].as_i64().unwrap();
    assert!((7000..=7300).contains(&wait), "waits {wait} s: {entry}");

    // Before that time: still pending, nothing asked.
    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // The administrator approves; the next pass collects it from the journal.
    common::approve_first_pending(&dir.join("ca"));
    let out = check_with(&dir, &config, &["--now", "+301d"]);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert_eq!(status(&config)["state"], "monitoring");
    assert!(dir.join("renewed.env").exists());
}

/// POST to the CA's admin listener.
fn admin_post(admin: u16, path: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: ca\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
}

#[test]
fn a_simulated_120_days_renews_two_containers_in_their_window_through_a_ca_outage() {
    let dir = temp("days");
    for slot in ["9a", "9c"] {
        common::enroll_slot(&dir, slot, Some(30));
    }
    // The CA issues 30-day certificates; its clock is moved a day at a time with the agent's.
    let scenario = dir.join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nvalidity_days = 30\n",
            renewal_client::sample::SAMPLE_TEMPLATE_OID
        ),
    )
    .unwrap();
    let (_ca, port, admin) = common::serve_ca_with_admin(&dir.join("ca"), Some(&scenario));
    let pin = dir.join("pin");
    std::fs::write(&pin, "123456\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = dir.join("agent.toml");
    let write = |ca_port: u16| {
        let entry = |slot: &str| {
            format!(
                "[[certificate]]\nname = \"card-{slot}\"\ntoken = \"sim:card.json\"\ncontainer = \"{slot}\"\nca = \"https://localhost:{ca_port}\"\nca_cert = \"ca/ca-chain.pem\"\npin_file = \"pin\"\n\n"
            )
        };
        std::fs::write(
            &config,
            format!("state_dir = \"state\"\n\n{}{}", entry("9a"), entry("9c")),
        )
        .unwrap();
    };
    write(port);
    let day = 86_400i64;
    let mut renewals: Vec<(String, i64, i64)> = Vec::new(); // (entry, day, days left before)
    let mut last: std::collections::BTreeMap<String, (String, i64)> = Default::default();
    let mut outage_failures = 0;
    for d in 1..=120i64 {
        admin_post(admin, &format!("/admin/clock/advance/{day}"));
        let outage = (59..=61).contains(&d);
        write(if outage { common::free_port() } else { port });
        let out = check_with(&dir, &config, &["--now", &format!("+{d}d")]);
        let code = out.status.code().unwrap();
        assert!(matches!(code, 0 | 10 | 4), "day {d}: {out:?}");
        if outage && code == 4 {
            outage_failures += 1;
        }
        if !outage {
            assert_ne!(code, 4, "day {d}: {out:?}");
        }
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("state/agent-state.json")).unwrap(),
        )
        .unwrap();
        for slot in ["9a", "9c"] {
            let name = format!("card-{slot}");
            let e = &state["entries"][&name];
            let (serial, not_after, now) = (
                e["serial"].as_str().unwrap().to_string(),
                e["not_after"].as_i64().unwrap(),
                e["last_check"].as_i64().unwrap(),
            );
            assert!(not_after > now, "day {d}: {name} expired: {e}");
            if let Some((old_serial, old_not_after)) = last.get(&name)
                && *old_serial != serial
            {
                renewals.push((name.clone(), d, (old_not_after - now) / day));
            }
            last.insert(name, (serial, not_after));
        }
    }
    for slot in ["9a", "9c"] {
        let name = format!("card-{slot}");
        let mine: Vec<_> = renewals.iter().filter(|r| r.0 == name).collect();
        // 120 days of 30-day certificates renewed 10–11 days before expiry: every ~20 days.
        assert!((5..=7).contains(&mine.len()), "{name}: {mine:?}");
        for (_, d, left) in &mine {
            // In the window (never a fresh certificate again), never after expiry; a renewal
            // delayed by the outage still happened with days to spare.
            assert!(
                (0..=11).contains(left),
                "{name} renewed on day {d} with {left} days left: {mine:?}"
            );
        }
    }
    assert!(
        outage_failures >= 1,
        "the outage met a due certificate: {renewals:?}"
    );
}

/// The real `pinentry-tty` (Debian's), on a pseudo-terminal made by `script`: the agent asks
/// once, the PIN is typed at the prompt, the card is renewed.
#[cfg(unix)]
#[test]
fn the_real_pinentry_tty_is_asked_on_the_terminal() {
    use std::io::{Read, Write};
    let pinentry = Path::new("/usr/bin/pinentry-tty");
    if !pinentry.exists() || !Path::new("/usr/bin/script").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pinentry-tty or script is missing (apt-get install pinentry-tty bsdutils)"
        );
        println!("SKIP: pinentry-tty or script is not installed");
        return;
    }
    let (dir, _ca, config) = fixture("pinentry-tty", None);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("pin_file = \"pin\"", "pinentry = \"/usr/bin/pinentry-tty\"");
    std::fs::write(&config, text).unwrap();
    let renew = common::bin("renew").get_program().to_owned();
    let command = format!(
        "GPG_TTY=$(tty) {} check --config {} --now +300d; echo EXIT=$?",
        renew.to_string_lossy(),
        config.display()
    );
    let mut child = std::process::Command::new("/usr/bin/script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = String::new();
    let mut typed = false;
    while !seen.contains("EXIT=") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no end within 30 s: {seen}");
        if let Ok(chunk) = rx.recv_timeout(left.min(std::time::Duration::from_millis(200))) {
            seen.push_str(&chunk);
        }
        if !typed && seen.contains("PIN:") {
            stdin.write_all(b"123456\r").unwrap();
            stdin.flush().unwrap();
            typed = true;
        }
    }
    let _ = child.wait();
    assert!(typed, "pinentry-tty never prompted: {seen}");
    assert!(
        seen.contains("cardrenew is renewing the certificate"),
        "{seen}"
    );
    assert_eq!(seen.matches("PIN:").count(), 1, "one prompt: {seen}");
    assert!(seen.contains("EXIT=10"), "{seen}");
    assert_eq!(status(&config)["state"], "monitoring");
}

#[test]
fn another_card_in_the_reader_is_treated_as_absent() {
    let (dir, _ca, config) = fixture("serial", None);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "container = \"9a\"",
            "container = \"9a\"\ncard_serial = \"00000000\"",
        ),
    )
    .unwrap();
    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let s = status(&config);
    assert_eq!(s["state"], "card absent", "{s}");
    let error = s["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("another card is in the reader"),
        "{error}"
    );
    assert!(!dir.join("renewed.env").exists());
    // The right serial (the card's own, as reported): renewed.
    let serial = error
        .split("(serial ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("00000000", serial)).unwrap();
    let out = check_with(&dir, &config, &["--now", "+300d", "--retry"]);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
}

/// The slot lines of `sim-card show` (`slot 9a: EccP256 ..., certificate ...`).
fn slots(dir: &Path) -> Vec<String> {
    card_serial(dir)
        .lines()
        .filter(|l| l.starts_with("slot "))
        .map(str::to_owned)
        .collect()
}

/// `renew check` killed right after each journal record a renewal writes (the process
/// aborts there: no unwinding, no agent state saved), then started again: the next start
/// finishes what the journal says — back to the old certificate and on to a new renewal, or
/// forward to the new certificate — and in every case the card ends with one key in 9A
/// holding a new certificate, the `post_renew` hook has run once, and no container is left.
#[test]
fn a_kill_at_every_journal_point_is_recovered_at_the_next_start() {
    use std::os::unix::process::ExitStatusExt;
    // `rollback-intent` needs a renewal that rolls back: the CA refuses the first request.
    let deny_first = "[[rule]]\nrequest = 1\ndisposition = \"deny\"\n";
    for (kind, scenario) in [
        ("begin", None),
        ("generate-intent", None),
        ("generated", None),
        ("submitted", None),
        ("install-intent", None),
        ("installed", None),
        ("supersede-intent", None),
        ("rollback-intent", Some(deny_first)),
    ] {
        let (dir, _ca, config) = fixture(&format!("kill-{kind}"), scenario);
        let before = slots(&dir);
        assert_eq!(before.len(), 1, "{before:?}");
        let killed = check_with(&dir, &config, &["--now", "+300d", "--abort-after", kind]);
        assert_eq!(killed.status.signal(), Some(6), "{kind}: {killed:?}");
        assert!(
            !dir.join("renewed.env").exists(),
            "{kind}: no hook before the kill"
        );

        let out = check_with(&dir, &config, &["--now", "+300d"]);
        assert_eq!(out.status.code(), Some(10), "{kind}: {out:?}");
        let after = slots(&dir);
        assert_eq!(after.len(), 1, "{kind}: one container left: {after:?}");
        assert!(after[0].starts_with("slot 9a:"), "{kind}: {after:?}");
        let renewed = status(&config);
        assert_eq!(renewed["state"], "monitoring", "{kind}: {renewed}");
        let env = std::fs::read_to_string(dir.join("renewed.env")).unwrap();
        assert!(
            env.contains(&format!(
                "CARDRENEW_SERIAL={}",
                renewed["serial"].as_str().unwrap()
            )),
            "{kind}: {env}"
        );
        // The certificate in 9A is the one the hook was given.
        let pem_path = env
            .lines()
            .find_map(|l| l.strip_prefix("CARDRENEW_CERT="))
            .unwrap();
        let pem = std::fs::read_to_string(pem_path).unwrap();
        let original = std::fs::read_to_string(dir.join("alice.pem")).unwrap();
        assert_ne!(pem, original, "{kind}: a new certificate");
        // Nothing left to do: the new certificate (issued today) is not due tomorrow.
        let again = check_with(&dir, &config, &["--now", "+1d"]);
        assert_eq!(again.status.code(), Some(0), "{kind}: {again:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// An entry that names the policy service (`cep`) instead of the CA: when due, the agent finds
/// the CES URI and the template in the policy and renews over MS-WSTEP, in the same one PIN
/// entry (here a PIN file); a configuration with both `ca` and `cep` is refused by name.
#[test]
fn an_entry_with_a_policy_service_renews_over_wstep() {
    let (dir, _ca, config) = fixture("cep", None);
    let text = std::fs::read_to_string(&config).unwrap();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("ca = \"https://localhost:"))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap()
        .to_string();
    let with_cep = text.replace(
        &format!("ca = \"https://localhost:{port}\""),
        &format!(
            "cep = \"https://localhost:{port}/ADPolicyProvider_CEP_Certificate/service.svc/CEP\""
        ),
    );
    std::fs::write(&config, &with_cep).unwrap();
    let before = card_serial(&dir);
    let out = check(&dir, &config, Some("+300d"));
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert_ne!(
        card_serial(&dir),
        before,
        "the card holds a new certificate"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "enrollment service https://localhost:{port}/cardrenew_CES_Certificate/service.svc/CES"
        )),
        "{stderr}"
    );

    let both = with_cep.replace(
        "cep = ",
        &format!("ca = \"https://localhost:{port}\"\ncep = "),
    );
    std::fs::write(&config, both).unwrap();
    let out = check(&dir, &config, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("alice: give the CA as `ca` or its policy service as `cep` (one of them)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--now` far enough ahead to overflow the clock (2^64 s is about 3 · 10^13 weeks) is a clear
/// error, for `renew check` and `renew agent` alike; it panicked before.
#[test]
fn a_now_past_the_year_9999_is_refused() {
    let dir = temp("far-now");
    let config = dir.join("agent.toml");
    std::fs::write(&config, "state_dir = \"state\"\n").unwrap();
    for command in ["check", "agent"] {
        let out = bin("renew")
            .current_dir(&dir)
            .args([command, "--config"])
            .arg(&config)
            .args(["--now", "+20000000000000w"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(stderr.contains("past the year 9999"), "{command}: {stderr}");
    }
}
