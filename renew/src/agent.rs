//! `renew check`, `renew agent`, `renew agent status`: the schedule of
//! `renewal_client::agent` around the same renewal `renew run` performs.
//!
//! One pass over the configuration, per tracked certificate: open its token (absent → `card
//! absent`, retried later), finish what the journal left (a pending request is collected, a
//! crash recovered), read the certificate in the container, and when it is due renew it; then
//! run the hook and write the state. The agent repeats passes, sleeping until the earliest
//! next action (at most an hour, so a clock that jumps is noticed within the hour).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, SystemTime},
};

use renewal_client::{
    agent::{AgentConfig, AgentState, EntryState, Phase, Tracked, policy::parse_duration},
    client::{
        Mode,
        https::read_trust_anchors,
        journal::{Journal, Record},
        processor::{self, RecoveryOutcome, RenewalError, RenewalOutcome, RollbackCause},
    },
    cmc::Retained,
    token::ContainerId,
};
use serde_json::json;
use x509_cert::Certificate;

use crate::{cli::Common, renewal, token};

/// What one pass did for one entry.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd)]
enum Pass {
    NothingDue,
    Renewed,
    Pending,
    Failed,
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// ISO 8601 (UTC) of Unix seconds.
fn iso(secs: i64) -> String {
    u64::try_from(secs)
        .ok()
        .and_then(|s| der::DateTime::from_unix_duration(Duration::from_secs(s)).ok())
        .map_or_else(|| secs.to_string(), |d| d.to_string())
}

/// Now moved forward by `offset` (`--now +DURATION`), refused past the year 9999 rather than
/// overflowing the clock.
fn ahead(offset: Duration) -> Result<SystemTime, String> {
    SystemTime::now()
        .checked_add(offset)
        .filter(|t| *t <= renewal_client::x509::latest_time())
        .ok_or_else(|| format!("--now +{} s: past the year 9999", offset.as_secs()))
}

fn parse_now(text: &str) -> Result<SystemTime, String> {
    match text.strip_prefix('+') {
        Some(offset) => ahead(parse_duration(offset).map_err(|e| e.to_string())?),
        None => text
            .parse::<i64>()
            .map(from_unix)
            .map_err(|_| format!("--now {text:?}: Unix seconds or +DURATION")),
    }
}

fn common_for(t: &Tracked, dir: &Path) -> Common {
    Common {
        token: t.token.clone(),
        container: t.container.clone(),
        pin_env: t.pin_env.clone(),
        pin_fd: None,
        pin_file: t.pin_file.clone(),
        pinentry: t.pinentry.clone(),
        pin_description: Some(format!(
            "cardrenew is renewing the certificate \"{}\" (container {}) at {}",
            t.name,
            t.container,
            t.endpoint()
        )),
        management_key: t.management_key.clone(),
        journal: Some(dir.join(format!("{}.journal.jsonl", t.name))),
        json: false,
        retries: t.resends,
        attest: t.attest,
        implicit_confirm: t.implicit_confirm,
    }
}

/// Runs a hook (argv, no shell) with the entry's facts in its environment; a failing hook is
/// reported, never fatal.
fn hook(argv: &[String], env: &[(&str, String)]) {
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!(hook = %program, status = %s, "hook failed"),
        Err(e) => tracing::warn!(hook = %program, error = %e, "hook could not run"),
    }
}

/// The certificate in the entry's container.
fn current_certificate(
    opened: &token::Opened,
    container: &str,
) -> Result<Retained<Certificate>, String> {
    let id = ContainerId(container.to_string());
    let mut token = opened.token.lock().map_err(|_| "token lock poisoned")?;
    let found = token
        .containers()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.certificate)
        .ok_or_else(|| format!("container {container} holds no certificate"))?;
    Retained::from_der(&found).map_err(|e| format!("the certificate in {container}: {e}"))
}

fn validity(cert: &Retained<Certificate>) -> (SystemTime, SystemTime) {
    let v = cert.value().tbs_certificate().validity();
    (
        SystemTime::UNIX_EPOCH + v.not_before.to_unix_duration(),
        SystemTime::UNIX_EPOCH + v.not_after.to_unix_duration(),
    )
}

/// One entry, one pass: updates `entry`, says what happened. `retry`: a person asked to try
/// again now (after fixing a PIN, or to skip a backoff).
/// `card_event`: a reader changed state since the last pass, so an absent card is looked for
/// again at once.
fn pass(
    t: &Tracked,
    entry: &mut EntryState,
    dir: &Path,
    now: SystemTime,
    retry: bool,
    card_event: bool,
) -> Pass {
    let policy = match t.policy() {
        Ok(p) => p,
        Err(e) => {
            return fail(
                entry,
                Phase::Stuck,
                e.to_string(),
                now,
                now + Duration::from_secs(3600),
            );
        }
    };
    let unix_now = unix(now);
    // A clock that went back more than five minutes: the waiting times computed then are not
    // to be trusted; decide afresh.
    if entry.last_check.is_some_and(|last| last > unix_now + 300) {
        entry.next_action = None;
    }
    entry.last_check = Some(unix_now);
    if retry {
        entry.next_action = None;
        entry.pin_refused = false;
    }
    if card_event && entry.phase == Phase::CardAbsent {
        entry.next_action = None;
    }
    if entry.pin_refused {
        return Pass::Failed;
    }
    let waiting = matches!(
        entry.phase,
        Phase::Backoff | Phase::Stuck | Phase::Pending | Phase::CardAbsent
    );
    if waiting && entry.next_action.is_some_and(|at| at > unix_now) {
        return match entry.phase {
            Phase::Pending => Pass::Pending,
            _ => Pass::Failed,
        };
    }

    let common = common_for(t, dir);
    let retry = |entry: &EntryState, not_after: SystemTime| {
        policy.retry_at(&t.name, entry.failures + 1, now, not_after, None)
    };
    let far = now + Duration::from_secs(86_400 * 365);
    let opened = match token::open(&common) {
        Ok(o) => o,
        Err(e) => {
            let at = retry(entry, entry.not_after.map_or(far, from_unix));
            return fail(entry, Phase::CardAbsent, e, now, at);
        }
    };
    if let Some(wanted) = &t.card_serial {
        let serial = opened
            .token
            .lock()
            .map_err(|_| "token lock poisoned".to_string())
            .and_then(|mut token| token.info().map_err(|e| e.to_string()))
            .map(|info| info.serial);
        let same = |s: &str| s.trim().eq_ignore_ascii_case(wanted.trim());
        match serial {
            Ok(s) if same(&s) => {}
            Ok(s) => {
                let at = retry(entry, entry.not_after.map_or(far, from_unix));
                return fail(
                    entry,
                    Phase::CardAbsent,
                    format!("another card is in the reader (serial {s}, expecting {wanted})"),
                    now,
                    at,
                );
            }
            Err(e) => {
                let at = retry(entry, entry.not_after.map_or(far, from_unix));
                return fail(entry, Phase::CardAbsent, e, now, at);
            }
        }
    }
    let result = renew_if_due(t, entry, &common, &opened, &policy, now);
    if let Err(e) = opened.save() {
        tracing::error!(entry = %t.name, error = %e, "saving the virtual card failed");
    }
    match result {
        Ok(pass) => pass,
        Err(Failure {
            error,
            pin_refused: true,
            ..
        }) => {
            entry.pin_refused = true;
            let error = format!(
                "{error}; not retried automatically: fix the PIN source, then `renew check --retry`"
            );
            let outcome = fail(entry, Phase::Stuck, error.clone(), now, now);
            entry.next_action = None;
            hook(
                &t.on_failure,
                &[
                    ("CARDRENEW_NAME", t.name.clone()),
                    ("CARDRENEW_STATE", Phase::Stuck.name().to_string()),
                    ("CARDRENEW_ERROR", error),
                ],
            );
            outcome
        }
        Err(Failure { phase, error, .. }) => {
            let at = match phase {
                // Refused: keep the certificate, try again at half the remaining time (at
                // least an hour), as certmonger does after a rejection.
                Phase::Stuck => {
                    let remaining = entry.not_after.map_or(Duration::from_secs(86_400), |na| {
                        from_unix(na).duration_since(now).unwrap_or_default()
                    });
                    now + (remaining / 2).max(Duration::from_secs(3600))
                }
                _ => retry(entry, entry.not_after.map_or(far, from_unix)),
            };
            let outcome = fail(entry, phase, error.clone(), now, at);
            hook(
                &t.on_failure,
                &[
                    ("CARDRENEW_NAME", t.name.clone()),
                    ("CARDRENEW_STATE", phase.name().to_string()),
                    ("CARDRENEW_ERROR", error),
                ],
            );
            outcome
        }
    }
}

fn fail(
    entry: &mut EntryState,
    phase: Phase,
    error: String,
    _now: SystemTime,
    at: SystemTime,
) -> Pass {
    entry.phase = phase;
    entry.failures += 1;
    entry.last_error = Some(error);
    entry.next_action = Some(unix(at));
    Pass::Failed
}

/// Logs (and runs `on_warning`) once per threshold the remaining validity has fallen below.
fn warn_if_expiring(t: &Tracked, entry: &mut EntryState, not_after: SystemTime, now: SystemTime) {
    let thresholds = t.warnings();
    let remaining = not_after.duration_since(now).unwrap_or_default();
    let Some(crossed) = thresholds.iter().rev().find(|th| remaining <= **th) else {
        return;
    };
    let crossed = crossed.as_secs();
    if entry.warned.is_some_and(|w| w <= crossed) {
        return;
    }
    entry.warned = Some(crossed);
    let days = remaining.as_secs() / 86_400;
    tracing::warn!(
        entry = %t.name,
        days,
        not_after = %iso(unix(not_after)),
        "the certificate expires soon"
    );
    hook(
        &t.on_warning,
        &[
            ("CARDRENEW_NAME", t.name.clone()),
            ("CARDRENEW_NOT_AFTER", iso(unix(not_after))),
            ("CARDRENEW_REMAINING_DAYS", days.to_string()),
        ],
    );
}

/// The journal record after which the process aborts (`renew check --abort-after`, tests).
static ABORT_AFTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes the process abort right after the journal record of kind `kind` is written and
/// synced: no unwinding, no state file written, exactly as a kill at that point leaves things.
pub fn abort_after(kind: String) {
    let _ = ABORT_AFTER.set(kind);
}

fn arm_abort(journal: &mut Journal) {
    if let Some(kind) = ABORT_AFTER.get() {
        let kind = kind.clone();
        journal.observe(Box::new(move |record| {
            let written = serde_json::to_value(record)
                .ok()
                .and_then(|v| v.get("record").and_then(|k| k.as_str()).map(str::to_owned));
            if written.as_deref() == Some(kind.as_str()) {
                std::process::abort();
            }
        }));
    }
}

/// Reads the card, finishes what the journal left, renews when due.
/// Why a pass did not renew, decided from the outcome's type: the entry's next phase, the
/// text the user reads, and whether the card refused the PIN (never retried by itself).
struct Failure {
    phase: Phase,
    error: String,
    pin_refused: bool,
}

impl Failure {
    fn backoff(error: String) -> Self {
        Self {
            phase: Phase::Backoff,
            error,
            pin_refused: false,
        }
    }

    fn stuck(error: String) -> Self {
        Self {
            phase: Phase::Stuck,
            error,
            pin_refused: false,
        }
    }

    fn pin(error: String) -> Self {
        Self {
            phase: Phase::Stuck,
            error,
            pin_refused: true,
        }
    }
}

fn renew_if_due(
    t: &Tracked,
    entry: &mut EntryState,
    common: &Common,
    opened: &token::Opened,
    policy: &renewal_client::agent::Policy,
    now: SystemTime,
) -> Result<Pass, Failure> {
    let backoff = Failure::backoff;
    let journal_path = common.journal.clone().unwrap_or_default();
    let mut journal = Journal::open(&journal_path).map_err(|e| backoff(e.to_string()))?;
    arm_abort(&mut journal);
    let anchors = read_trust_anchors(&t.ca_cert).map_err(|e| backoff(e.to_string()))?;
    let configured: Mode = t.mode;
    // The CA, mode and template: configured, or found in the policy at `cep` (asked only
    // when there is something to send, within the same card login).
    let endpoint = || -> Result<(String, Mode, Option<String>), Failure> {
        match (&t.ca, &t.cep) {
            (Some(ca), _) => Ok((ca.clone(), configured, t.template.clone())),
            (None, Some(cep)) => {
                let (url, oid) =
                    renewal::resolve_cep(opened, common, cep, &anchors, t.template.as_deref())
                        .map_err(backoff)?;
                Ok((url, Mode::Wstep, Some(oid)))
            }
            (None, None) => Err(Failure::stuck("no ca and no cep".into())),
        }
    };

    let recovered = processor::recover(&opened.token, &mut journal)
        .map_err(|e| backoff(format!("recovering the last renewal: {e}")))?;
    let outcome = if let RecoveryOutcome::Completed { container } = &recovered {
        // A renewal killed after the certificate passed its checks was finished forward: it
        // is a renewal like any other (new certificate file, `post_renew` hook).
        let cert = current_certificate(opened, &container.0).map_err(backoff)?;
        Some(Ok(RenewalOutcome::Renewed {
            container: container.clone(),
            certificate: cert.der().to_vec(),
        }))
    } else if recovered == RecoveryOutcome::Pending {
        // A request the CA has not decided yet (across restarts): collect it.
        let (url, mode, _) = endpoint()?;
        let mut service =
            renewal::service(opened, common, &url, &anchors, mode).map_err(backoff)?;
        Some(processor::resume(
            Arc::clone(&opened.token),
            &mut service,
            &mut journal,
            renewal::config(common, mode, anchors.clone(), None, t.max_polls, now),
        ))
    } else {
        None
    };
    let outcome = match outcome {
        Some(o) => o,
        None => {
            let cert = current_certificate(opened, &t.container).map_err(backoff)?;
            let (not_before, not_after) = validity(&cert);
            let serial = cert.value().tbs_certificate().serial_number().to_string();
            if entry.serial.as_deref() != Some(serial.as_str()) {
                entry.warned = None;
            }
            entry.serial = Some(serial);
            entry.not_after = Some(unix(not_after));
            warn_if_expiring(t, entry, not_after, now);
            if !policy.due(&t.name, not_before, not_after, now) {
                entry.phase = Phase::Monitoring;
                entry.failures = 0;
                entry.last_error = None;
                entry.next_action = Some(unix(policy.renew_at(&t.name, not_before, not_after)));
                return Ok(Pass::NothingDue);
            }
            entry.phase = Phase::Renewing;
            let (url, mode, template) = endpoint()?;
            let mut service =
                renewal::service(opened, common, &url, &anchors, mode).map_err(backoff)?;
            processor::Renewal::new(
                Arc::clone(&opened.token),
                &mut service,
                &mut journal,
                renewal::config(
                    common,
                    mode,
                    anchors.clone(),
                    template.as_deref(),
                    t.max_polls,
                    now,
                ),
            )
            .run()
        }
    };
    match outcome {
        Ok(RenewalOutcome::Renewed { certificate, .. }) => {
            let cert = Retained::<Certificate>::from_der(&certificate)
                .map_err(|e| backoff(format!("the new certificate: {e}")))?;
            let (not_before, not_after) = validity(&cert);
            let serial = cert.value().tbs_certificate().serial_number().to_string();
            let dir = journal_path.parent().unwrap_or(Path::new("."));
            let path = dir.join(format!("{}.pem", t.name));
            let pem =
                der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &certificate)
                    .map_err(|e| backoff(e.to_string()))?;
            std::fs::write(&path, pem).map_err(|e| backoff(format!("{}: {e}", path.display())))?;
            *entry = EntryState {
                phase: Phase::Monitoring,
                serial: Some(serial.clone()),
                not_after: Some(unix(not_after)),
                next_action: Some(unix(policy.renew_at(&t.name, not_before, not_after))),
                last_error: None,
                failures: 0,
                last_check: entry.last_check,
                pin_refused: false,
                warned: None,
            };
            tracing::info!(entry = %t.name, serial = %serial, not_after = %iso(unix(not_after)), "renewed");
            hook(
                &t.post_renew,
                &[
                    ("CARDRENEW_NAME", t.name.clone()),
                    ("CARDRENEW_CERT", path.display().to_string()),
                    ("CARDRENEW_SERIAL", serial),
                    ("CARDRENEW_NOT_AFTER", iso(unix(not_after))),
                ],
            );
            Ok(Pass::Renewed)
        }
        Ok(RenewalOutcome::Pending) => {
            entry.phase = Phase::Pending;
            entry.last_error = None;
            // The CA's Retry-After, as the journal recorded it.
            let retry_after = journal.current().iter().rev().find_map(|r| match r {
                Record::Pending { retry_after, .. } => Some(Duration::from_secs(*retry_after)),
                _ => None,
            });
            let not_after = entry.not_after.map_or(now, from_unix);
            let at = policy.retry_at(&t.name, 1, now, not_after, retry_after);
            entry.next_action = Some(unix(at));
            Ok(Pass::Pending)
        }
        // The CA's decision, or a certificate its template makes that is not the renewed one:
        // asking again gets the same, and every certificate it issues meanwhile is one more
        // that is never installed.
        Ok(RenewalOutcome::RolledBack {
            reason: reason @ (RollbackCause::Refused { .. } | RollbackCause::NotARenewal(_)),
        }) => Err(Failure::stuck(reason.to_string())),
        Ok(RenewalOutcome::RolledBack {
            reason: RollbackCause::Pin(refusal),
        }) => Err(Failure::pin(refusal.to_string())),
        Ok(RenewalOutcome::RolledBack { reason }) => Err(backoff(reason.to_string())),
        Err(RenewalError::Card { step, source }) => match source.pin_refusal() {
            Some(refusal) => Err(Failure::pin(refusal.to_string())),
            None => Err(backoff(RenewalError::Card { step, source }.to_string())),
        },
        Err(e) => Err(backoff(e.to_string())),
    }
}

/// Logs to stderr through `tracing` (`RUST_LOG` filters; no colours when not a terminal).
pub fn init_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

/// One pass over every entry; the exit code of `renew check`.
pub fn check(config_path: &Path, now: Option<&str>, retry: bool) -> Result<u8, String> {
    let now = now
        .map(parse_now)
        .transpose()?
        .unwrap_or_else(SystemTime::now);
    check_at(config_path, now, retry, false)
}

fn check_at(
    config_path: &Path,
    now: SystemTime,
    retry: bool,
    card_event: bool,
) -> Result<u8, String> {
    let config = AgentConfig::load(config_path).map_err(|e| e.to_string())?;
    let dir = config.state_dir().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut state = AgentState::load(&dir).map_err(|e| e.to_string())?;
    let mut worst = Pass::NothingDue;
    for t in &config.certificates {
        let entry = state.entries.entry(t.name.clone()).or_default();
        let outcome = pass(t, entry, &dir, now, retry, card_event);
        match &entry.last_error {
            Some(e) => {
                tracing::warn!(entry = %t.name, state = entry.phase.name(), error = %e, next = ?entry.next_action.map(iso), "not renewed")
            }
            None => {
                tracing::info!(entry = %t.name, state = entry.phase.name(), next = ?entry.next_action.map(iso), "checked")
            }
        }
        worst = worst.max(outcome);
        state.save(&dir).map_err(|e| e.to_string())?;
    }
    // Entries no longer in the configuration are forgotten.
    state
        .entries
        .retain(|name, _| config.certificates.iter().any(|t| &t.name == name));
    state.save(&dir).map_err(|e| e.to_string())?;
    Ok(match worst {
        Pass::NothingDue => 0,
        Pass::Renewed => 10,
        Pass::Pending => 3,
        Pass::Failed => 4,
    })
}

/// `renew agent`: passes forever, sleeping until the earliest next action (30 s – 1 h). While
/// an entry on a PC/SC reader waits for its card, the sleep is a wait on the readers' events
/// (`SCardGetStatusChange`): a card inserted ends it at once. `offset` moves the agent's clock
/// (testing and dry runs: `--now +DURATION`).
pub fn run(config_path: &Path, offset: Option<&str>) -> Result<u8, String> {
    let offset = match offset {
        None => Duration::ZERO,
        Some(text) => parse_duration(text.trim_start_matches('+')).map_err(|e| e.to_string())?,
    };
    ahead(offset)?;
    let config = AgentConfig::load(config_path).map_err(|e| e.to_string())?;
    let dir: PathBuf = config.state_dir().map_err(|e| e.to_string())?;
    let mut card_event = false;
    loop {
        let now = ahead(offset)?;
        if let Err(e) = check_at(config_path, now, false, card_event) {
            tracing::error!(error = %e, "pass failed");
        }
        let state = AgentState::load(&dir).unwrap_or_default();
        let next = state
            .entries
            .values()
            .filter_map(|e| e.next_action)
            .min()
            .unwrap_or(unix(now) + 3600);
        let wait =
            Duration::from_secs(u64::try_from((next - unix(now)).clamp(30, 3600)).unwrap_or(30));
        let waiting_for_a_reader = config.certificates.iter().any(|t| {
            t.token.starts_with("piv-pcsc")
                && state
                    .entries
                    .get(&t.name)
                    .is_some_and(|e| e.phase == Phase::CardAbsent)
        });
        card_event = false;
        if waiting_for_a_reader {
            match card_events::wait(wait) {
                Some(changed) => card_event = changed,
                None => std::thread::sleep(wait),
            }
        } else {
            std::thread::sleep(wait);
        }
    }
}

/// Waiting for a card with PC/SC reader events.
mod card_events {
    use std::time::Duration;

    /// Waits until a reader's state changes (a card inserted or removed, a reader plugged) or
    /// `timeout` passes: `Some(true)` on a change, `Some(false)` on the timeout, `None` when
    /// PC/SC cannot be used for waiting (the caller sleeps).
    #[cfg(feature = "pcsc")]
    pub fn wait(timeout: Duration) -> Option<bool> {
        use pcsc::{Context, PNP_NOTIFICATION, ReaderState, Scope, State};
        let Ok(ctx) = Context::establish(Scope::User) else {
            return None;
        };
        let mut names = vec![0u8; 4096];
        let mut states: Vec<ReaderState> = ctx
            .list_readers(&mut names)
            .map(|readers| {
                readers
                    .map(|r| ReaderState::new(r.to_owned(), State::UNAWARE))
                    .collect()
            })
            .unwrap_or_default();
        // Readers plugged in later wake the wait too.
        states.push(ReaderState::new(PNP_NOTIFICATION(), State::UNAWARE));
        // The first call reports the current states; the second waits for a change.
        if ctx.get_status_change(Duration::ZERO, &mut states).is_err() && states.len() > 1 {
            return None;
        }
        for s in &mut states {
            s.sync_current_state();
        }
        match ctx.get_status_change(timeout, &mut states) {
            Ok(()) => {
                tracing::info!("a card reader changed state; checking now");
                Some(true)
            }
            Err(pcsc::Error::Timeout) => Some(false),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for reader events failed");
                None
            }
        }
    }

    #[cfg(not(feature = "pcsc"))]
    pub fn wait(_: Duration) -> Option<bool> {
        None
    }
}

/// `renew agent status`: the `getcert list` of cards.
pub fn status(config_path: &Path, as_json: bool) -> Result<u8, String> {
    let config = AgentConfig::load(config_path).map_err(|e| e.to_string())?;
    let state = AgentState::load(&config.state_dir().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let rows: Vec<serde_json::Value> = config
        .certificates
        .iter()
        .map(|t| {
            let e = state.entries.get(&t.name).cloned().unwrap_or_default();
            let seen = state.entries.contains_key(&t.name);
            json!({
                "name": t.name,
                "token": t.token,
                "container": t.container,
                "state": if seen { e.phase.name() } else { "not checked yet" },
                "serial": e.serial,
                "not_after": e.not_after.map(iso),
                "next_action": e.next_action.map(iso),
                "failures": e.failures,
                "last_error": e.last_error,
                "pin_refused": e.pin_refused,
            })
        })
        .collect();
    if as_json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in &rows {
            println!(
                "{}  [{} {}]  {}  until {}  next {}{}",
                r["name"].as_str().unwrap_or("?"),
                r["token"].as_str().unwrap_or("?"),
                r["container"].as_str().unwrap_or("?"),
                r["state"].as_str().unwrap_or("?"),
                r["not_after"].as_str().unwrap_or("-"),
                r["next_action"].as_str().unwrap_or("-"),
                r["last_error"]
                    .as_str()
                    .map(|e| format!("  last error: {e}"))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(0)
}
