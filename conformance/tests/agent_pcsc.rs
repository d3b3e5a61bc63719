//! `renew agent` waits for a PC/SC card with reader events: started while the reader is empty,
//! it reports "card absent"; when the card is inserted (the virtual card served to vpcd behind
//! a real pcscd) it renews within seconds — not at its next scheduled pass (at least 30 s
//! later), which is what a polling sleep would give.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use common::{bin, ok};
use sim_card::harness::{Pcscd, ServedCard};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status(config: &Path) -> serde_json::Value {
    let out = ok(bin("renew")
        .args(["agent", "status", "--json", "--config"])
        .arg(config));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

fn wait_for(
    config: &Path,
    what: &str,
    seconds: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let s = status(config);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} within {seconds} s: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_agent_renews_as_soon_as_the_card_is_inserted() {
    if common::which("pcscd").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pcscd is missing (apt-get install pcscd vsmartcard-vpcd)"
        );
        println!("SKIP: pcscd is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("cardrenew-agent-pcsc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A 30-day certificate on the card: due at +25 d with renew_before = 10d; its one-year
    // successor is not, so the agent renews once.
    let card = dir.join("card.json");
    common::enroll_slot(&dir, "9a", Some(30));
    let (_ca, port) = common::serve_ca(&dir.join("ca"), None);
    std::fs::write(dir.join("pin"), "123456\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("pin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pcscd = Pcscd::start().unwrap();
    let reader = pcscd.reader();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n\n[[certificate]]\nname = \"alice\"\ntoken = \"piv-pcsc:{reader}\"\nca = \"https://localhost:{port}\"\nca_cert = \"ca/ca-chain.pem\"\npin_file = \"pin\"\nrenew_before = \"10d\"\nretry_min = \"60s\"\n"
        ),
    )
    .unwrap();

    let agent = Killed(
        bin("renew")
            .args(["agent", "--now", "+25d", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let absent = wait_for(&config, "card absent", 20, |s| s["state"] == "card absent");
    assert!(absent["last_error"].is_string(), "{absent}");

    // Insert the card: the agent is sleeping on reader events, not for its 60 s retry.
    let inserted = Instant::now();
    let served_state = dir.join("served.json");
    std::fs::copy(&card, &served_state).unwrap();
    let applet = sim_card::PivApplet::from_state(sim_card::CardState::load(&served_state).unwrap());
    let served = ServedCard::start(applet, Some(served_state.clone()));
    let renewed = wait_for(&config, "renewed after the card was inserted", 25, |s| {
        s["state"] == "monitoring"
    });
    assert!(
        inserted.elapsed() < Duration::from_secs(30),
        "renewed {:?} after insertion: woken by the event, not by the 60 s retry",
        inserted.elapsed()
    );
    drop(agent);
    drop(served);
    drop(pcscd);
    assert!(renewed["not_after"].as_str().unwrap() > absent["not_after"].as_str().unwrap_or(""));
    let shown = ok(bin("sim-card").args(["show", "--state"]).arg(&served_state));
    let before = ok(bin("sim-card").args(["show", "--state"]).arg(&card));
    assert_ne!(
        shown, before,
        "the card behind pcscd holds the new certificate"
    );
}
