//! What happened during a run, in order, on three lanes — client, card, gateway/CA — for the
//! transcripts (snapshots) and the HTML sequence diagrams. Recorded by wrapping the card
//! transport, the PIN source and the CA connection, and by observing the journal.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use renewal_client::{
    client::{RenewalService, ServiceAnswer, ServiceError, journal::Record},
    cmc::{Outcome, Retained},
    token::{
        PinRequest, PinSource, TokenError,
        pin::{Pin, PinError},
        piv::ApduTransport,
    },
};
use x509_cert::Certificate;

/// A lane of the sequence diagram.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Lane {
    /// The renewal client.
    Client,
    /// The smart card.
    Card,
    /// The gateway and CA.
    Ca,
}

/// One event.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Event {
    /// Who acts.
    pub lane: Lane,
    /// What happened.
    pub text: String,
    /// A PIN prompt.
    pub pin: bool,
    /// Something failed here.
    pub failed: bool,
}

/// How long one card exchange or CA exchange took (for `conformance phases`).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The card command (`ins_name`) or the CA exchange.
    pub what: &'static str,
    /// When it started.
    pub start: Instant,
    /// How long it took.
    pub took: Duration,
}

/// The shared event log, and the timings of the exchanges.
#[derive(Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<Event>>>, Arc<Mutex<Vec<Timing>>>);

impl Trace {
    /// Records how long an exchange took.
    pub fn time(&self, what: &'static str, start: Instant) {
        if let Ok(mut timings) = self.1.lock() {
            timings.push(Timing {
                what,
                start,
                took: start.elapsed(),
            });
        }
    }

    /// The timings so far.
    pub fn timings(&self) -> Vec<Timing> {
        self.1.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Adds an event.
    pub fn push(&self, lane: Lane, text: impl Into<String>, pin: bool, failed: bool) {
        if let Ok(mut events) = self.0.lock() {
            events.push(Event {
                lane,
                text: text.into(),
                pin,
                failed,
            });
        }
    }

    /// Forgets what was recorded (provisioning is not part of a scenario).
    pub fn clear(&self) {
        if let Ok(mut events) = self.0.lock() {
            events.clear();
        }
        if let Ok(mut timings) = self.1.lock() {
            timings.clear();
        }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The events with runs of identical card exchanges folded ("PUT DATA -> 9000 x3"), and
    /// runs of an alternating pair too (a slot scan: "GET METADATA -> 6A88; GET DATA -> 6A82
    /// x20").
    pub fn folded(&self) -> Vec<(Event, usize)> {
        let mut singles: Vec<(Event, usize)> = Vec::new();
        for e in self.events() {
            match singles.last_mut() {
                Some((last, n)) if *last == e && e.lane == Lane::Card => *n += 1,
                _ => singles.push((e, 1)),
            }
        }
        let mut out: Vec<(Event, usize)> = Vec::new();
        let mut i = 0;
        while i < singles.len() {
            let pair = singles.get(i..i + 2).filter(|p| {
                p.iter()
                    .all(|(e, n)| *n == 1 && e.lane == Lane::Card && !e.failed)
            });
            if let Some([a, b]) = pair {
                let mut repeats = 1;
                while singles.get(i + 2 * repeats..i + 2 * repeats + 2)
                    == Some(&[a.clone(), b.clone()][..])
                {
                    repeats += 1;
                }
                if repeats > 1 {
                    let merged = Event {
                        text: format!("{}; {}", a.0.text, b.0.text),
                        ..a.0.clone()
                    };
                    out.push((merged, repeats));
                    i += 2 * repeats;
                    continue;
                }
            }
            out.push(singles[i].clone());
            i += 1;
        }
        out
    }

    /// A readable, deterministic transcript.
    pub fn transcript(&self) -> String {
        self.folded()
            .into_iter()
            .map(|(e, n)| {
                let lane = match e.lane {
                    Lane::Client => "client",
                    Lane::Card => "card  ",
                    Lane::Ca => "ca    ",
                };
                let times = if n > 1 {
                    format!(" x{n}")
                } else {
                    String::new()
                };
                let mark = if e.pin {
                    "  [PIN]"
                } else if e.failed {
                    "  [FAILED]"
                } else {
                    ""
                };
                format!("{lane} {}{times}{mark}\n", e.text)
            })
            .collect()
    }
}

fn ins_name(ins: u8, p2: u8) -> &'static str {
    match ins {
        0xA4 => "SELECT",
        0xCB => "GET DATA",
        0xDB => "PUT DATA",
        0x20 => "VERIFY",
        0x47 => "GENERATE",
        0x87 if p2 == 0x9B => "MGMT AUTH",
        0x87 => "SIGN",
        0xC0 => "GET RESPONSE",
        0xF6 => "MOVE/DELETE KEY",
        0xF7 => "GET METADATA",
        0xF8 => "GET SERIAL",
        0xFD => "GET VERSION",
        _ => "OTHER",
    }
}

/// Records every APDU and its status word.
pub struct RecordingTransport<T> {
    /// The wrapped transport.
    pub inner: T,
    /// Where events go.
    pub trace: Trace,
}

impl<T: ApduTransport> ApduTransport for RecordingTransport<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TokenError> {
        let name = match apdu {
            [_, ins, _, p2, ..] => ins_name(*ins, *p2),
            _ => "MALFORMED",
        };
        let start = Instant::now();
        let result = self.inner.transmit(apdu);
        self.trace.time(name, start);
        match result {
            Ok(resp) => {
                let sw = resp
                    .len()
                    .checked_sub(2)
                    .map(|i| u16::from_be_bytes([resp[i], resp[i + 1]]))
                    .unwrap_or(0);
                let ok = sw == 0x9000 || sw >> 8 == 0x61;
                // "More data" counts depend on certificate lengths (random serials, ECDSA
                // signature sizes): the summary keeps the meaning, not the count.
                let status = if sw >> 8 == 0x61 {
                    "61xx".to_string()
                } else {
                    format!("{sw:04X}")
                };
                let expected_miss = matches!(sw, 0x6A82 | 0x6A88) || sw & 0xFFF0 == 0x63C0;
                self.trace.push(
                    Lane::Card,
                    format!("{name} -> {status}"),
                    false,
                    !ok && !expected_miss,
                );
                Ok(resp)
            }
            Err(e) => {
                self.trace
                    .push(Lane::Card, format!("{name} -> card removed"), false, true);
                Err(e)
            }
        }
    }
}

/// Records every PIN prompt.
pub struct RecordingPins<P> {
    /// The wrapped source.
    pub inner: P,
    /// Where events go.
    pub trace: Trace,
}

impl<P: PinSource> PinSource for RecordingPins<P> {
    fn pin(&self, request: &PinRequest) -> Result<Pin, PinError> {
        self.trace.push(
            Lane::Client,
            format!("PIN prompt ({:?})", request.context),
            true,
            false,
        );
        self.inner.pin(request)
    }
}

/// The timing label of `GET /cacerts`.
pub const CA_CACERTS: &str = "CA cacerts";
/// The timing label of a request to the CA (TLS handshake, HTTP, the CA's decision).
pub const CA_SUBMIT: &str = "CA request";

/// Records every exchange with the CA.
pub struct RecordingService<S> {
    /// The wrapped service.
    pub inner: S,
    /// Where events go.
    pub trace: Trace,
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Issued => "issued".into(),
        Outcome::Failed {
            fail_info: Some(info),
        } => format!("failed ({})", info.name()),
        Outcome::Failed { fail_info: None } => "failed".into(),
        Outcome::Pending { .. } => "pending".into(),
        Outcome::Other(s) => s.name().into(),
    }
}

impl<S: RenewalService> RenewalService for RecordingService<S> {
    fn warm_up(&mut self) -> Result<Vec<Retained<Certificate>>, ServiceError> {
        let start = Instant::now();
        let r = self.inner.warm_up();
        self.trace.time(CA_CACERTS, start);
        match &r {
            Ok(certs) => self.trace.push(
                Lane::Ca,
                format!("GET /cacerts -> {} CA certificates", certs.len()),
                false,
                false,
            ),
            Err(e) => self
                .trace
                .push(Lane::Ca, format!("GET /cacerts -> {e}"), false, true),
        }
        r
    }

    fn submit(&mut self, body: &[u8]) -> Result<ServiceAnswer, ServiceError> {
        let start = Instant::now();
        let r = self.inner.submit(body);
        self.trace.time(CA_SUBMIT, start);
        match &r {
            Ok(ServiceAnswer::Response { response, .. }) => self.trace.push(
                Lane::Ca,
                format!(
                    "POST request -> {:?} {}",
                    response.form,
                    outcome_text(&response.outcome)
                ),
                false,
                matches!(response.outcome, Outcome::Failed { .. }),
            ),
            Ok(ServiceAnswer::Pending { retry_after }) => self.trace.push(
                Lane::Ca,
                format!("POST request -> 202 retry after {retry_after} s"),
                false,
                false,
            ),
            Ok(ServiceAnswer::Refused { text }) => self.trace.push(
                Lane::Ca,
                format!("POST request -> SOAP fault {text}"),
                false,
                true,
            ),
            Ok(ServiceAnswer::Cmp { message }) => {
                let body = renewal_client::cmp::PkiMessage::parse(
                    message,
                    &renewal_client::cmc::Limits::default(),
                )
                .map_or_else(
                    |e| format!("unreadable ({e})"),
                    |m| m.body.name().to_string(),
                );
                self.trace
                    .push(Lane::Ca, format!("POST PKIMessage -> {body}"), false, false)
            }
            Err(e) => self
                .trace
                .push(Lane::Ca, format!("POST request -> {e}"), false, true),
        }
        r
    }
}

/// The journal step a record marks.
pub fn step_text(record: &Record) -> String {
    match record {
        Record::Begin { .. } => "journal: begin".into(),
        Record::GenerateIntent { .. } => "journal: generate-intent".into(),
        Record::Generated { container } => format!("journal: generated in {container}"),
        Record::Submitted { .. } => "journal: submitted".into(),
        Record::Retry { attempt, reason } => {
            format!("journal: retry {attempt}, the same request ({reason})")
        }
        Record::Pending { .. } => "journal: pending".into(),
        Record::InstallIntent { .. } => "journal: install-intent".into(),
        Record::Installed => "journal: installed".into(),
        Record::SupersedeIntent => "journal: supersede-intent".into(),
        Record::Done { container } => format!("journal: done, certificate in {container}"),
        Record::RollbackIntent { reason } => format!("journal: rollback-intent ({reason})"),
        Record::RolledBack => "journal: rolled back".into(),
    }
}
