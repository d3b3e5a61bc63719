//! Scenarios as TOML, for matrices of your own (`conformance --scenarios FILE`):
//!
//! ```toml
//! [[scenario]]
//! name = "mine/denied"
//! ca = """
//! [[rule]]
//! disposition = "deny"
//! """
//! mode = "fullcmc"              # fullcmc | cmc | simplereenroll
//! key = "p256"                  # p256 | rsa2048
//! card_faults = [{ kind = "sign", nth = 2, fault = "fail:6A80" }]
//! crash = "Installed"           # a journal record: Begin, GenerateIntent, Generated, Submitted,
//!                               # InstallIntent, Installed, SupersedeIntent, RollbackIntent
//! expected = "rolled-back"      # renewed | rolled-back | pending | recovered-completed | recovered-rolled-back
//! ```
//! Other keys: `capacity` (24), `pin` ("123456"), `pin_retries` (3), `prompts` (1),
//! `pin_policy` of the key in 9A ("once"; "always": a VERIFY before every signature, "never"),
//! `attest` (false; true: the client attaches the card's attestation of the new key).

use renewal_client::{client::Mode, client::processor::CrashPoint, token::KeyAlgorithm};
use serde::Deserialize;
use sim_card::faults::{CommandKind, Fault};

use crate::matrix::{Expected, Scenario};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenario: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFault {
    kind: String,
    nth: u32,
    fault: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    ca: String,
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    card_faults: Vec<CardFault>,
    #[serde(default = "default_capacity")]
    capacity: usize,
    #[serde(default = "default_pin")]
    pin: String,
    #[serde(default = "default_retries")]
    pin_retries: u8,
    crash: Option<String>,
    expected: String,
    #[serde(default = "default_prompts")]
    prompts: usize,
    #[serde(default)]
    pin_policy: Option<String>,
    #[serde(default)]
    attest: bool,
}

fn default_mode() -> String {
    "fullcmc".into()
}
fn default_key() -> String {
    "p256".into()
}
fn default_capacity() -> usize {
    24
}
fn default_pin() -> String {
    "123456".into()
}
fn default_retries() -> u8 {
    3
}
fn default_prompts() -> usize {
    1
}

fn kind(text: &str) -> Result<CommandKind, String> {
    Ok(match text {
        "any" => CommandKind::Any,
        "select" => CommandKind::Select,
        "get-data" => CommandKind::GetData,
        "put-data" => CommandKind::PutData,
        "verify" => CommandKind::Verify,
        "generate" => CommandKind::Generate,
        "sign" => CommandKind::Sign,
        "management-auth" => CommandKind::ManagementAuth,
        "move-key" => CommandKind::MoveKey,
        other => return Err(format!("unknown command kind {other:?}")),
    })
}

fn fault(text: &str) -> Result<Fault, String> {
    let (name, arg) = text.split_once(':').unwrap_or((text, ""));
    Ok(match name {
        "fail" => Fault::Fail(
            u16::from_str_radix(arg, 16).map_err(|_| format!("fault {text:?}: bad status word"))?,
        ),
        "remove-before" => Fault::RemoveBefore,
        "remove-after" => Fault::RemoveAfter,
        "delay" => Fault::Delay(
            arg.parse()
                .map_err(|_| format!("fault {text:?}: bad milliseconds"))?,
        ),
        _ => return Err(format!("unknown card fault {text:?}")),
    })
}

/// Parses a scenario file. The sim-ca part of each scenario is checked too.
pub fn parse(text: &str) -> Result<Vec<Scenario>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    file.scenario
        .into_iter()
        .map(|e| {
            sim_ca::scenario::Scenario::from_toml(&e.ca)
                .map_err(|err| format!("{}: ca: {err}", e.name))?;
            let mode: Mode = e.mode.parse().map_err(|err| format!("{}: {err}", e.name))?;
            let key: KeyAlgorithm = e.key.parse().map_err(|err| format!("{}: {err}", e.name))?;
            let crash = match e.crash.as_deref() {
                None => None,
                Some(c) => Some(
                    *CrashPoint::ALL
                        .iter()
                        .find(|p| format!("{p:?}") == c)
                        .ok_or_else(|| format!("{}: unknown crash point {c:?}", e.name))?,
                ),
            };
            let expected = Expected::from_name(&e.expected)
                .ok_or_else(|| format!("{}: unknown expected outcome {:?}", e.name, e.expected))?;
            let card_faults = e
                .card_faults
                .iter()
                .map(|f| Ok((kind(&f.kind)?, f.nth, fault(&f.fault)?)))
                .collect::<Result<_, String>>()
                .map_err(|err| format!("{}: {err}", e.name))?;
            let pin_policy = match e.pin_policy.as_deref() {
                None | Some("once") => sim_card::state::PinPolicy::Once,
                Some("always") => sim_card::state::PinPolicy::Always,
                Some("never") => sim_card::state::PinPolicy::Never,
                Some(other) => {
                    return Err(format!(
                        "{}: unknown pin_policy {other:?} (once, always, never)",
                        e.name
                    ));
                }
            };
            let pin: &'static str = Box::leak(e.pin.into_boxed_str());
            Ok(Scenario {
                name: e.name,
                ca: e.ca,
                card_faults,
                capacity: e.capacity,
                pin,
                pin_retries: e.pin_retries,
                mode,
                key,
                crash,
                expected,
                prompts: e.prompts,
                pin_policy,
                attest: e.attest,
                touch: crate::matrix::Touch::Never,
                model: sim_card::state::CardModel::YubiKey57,
                protected_management_key: false,
                gateway: None,
            })
        })
        .collect()
}
