//! `conformance phases`: where the time of one renewal goes, client side — card key
//! generation, card signatures, PIN, installing, reads, the CA exchange (TLS handshake, HTTP,
//! the CA's decision), and the client's own work (encoding, checks, journal) — measured on the
//! virtual card and an in-process CA over loopback mutual TLS, and the same renewal with card
//! timings from a model of a real card behind pcscd.
//!
//! The virtual card answers in microseconds; a real one does not: every APDU crosses pcscd and
//! USB (the model's `per_apdu`), and key generation and signing take the card's own time
//! (`keygen`, `sign`; an RSA-2048 key takes seconds). The modelled total replaces each APDU's
//! measured time by the model's and keeps everything else as measured. Card exchanges during
//! the CA exchange (the TLS client signature) count as card time, not CA time.

use std::time::Duration;

use renewal_client::{
    client::{Mode, processor::Renewal},
    token::KeyAlgorithm,
};

use crate::{
    harness::World,
    trace::{CA_CACERTS, CA_SUBMIT, Timing},
};

/// A real card's timings.
#[derive(Clone, Copy, Debug)]
pub struct CardModel {
    /// Every APDU: pcscd, the reader, USB, the card's dispatch.
    pub per_apdu: Duration,
    /// A key generation on top of its APDU.
    pub keygen: Duration,
    /// A signature on top of its APDU.
    pub sign: Duration,
}

impl CardModel {
    /// Typical figures for a PIV card behind pcscd: 100 ms per APDU; P-256 key generation
    /// 0.5 s and signature 0.15 s; RSA-2048 key generation 10 s and signature 0.5 s. P-384
    /// gets the P-256 figures and RSA-3072/4096 the RSA-2048 ones (real cards are slower for
    /// both: pass `--keygen-ms`/`--sign-ms` with a measured card's figures).
    pub fn typical(key: KeyAlgorithm) -> Self {
        let ms = Duration::from_millis;
        match key {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => Self {
                per_apdu: ms(100),
                keygen: ms(10_000),
                sign: ms(500),
            },
            _ => Self {
                per_apdu: ms(100),
                keygen: ms(500),
                sign: ms(150),
            },
        }
    }
}

/// One phase of a renewal.
#[derive(Clone, Debug)]
pub struct Phase {
    /// What it is.
    pub name: &'static str,
    /// Exchanges in it (APDUs, CA requests); 0 for the client's own work.
    pub count: usize,
    /// Measured (virtual card, in-process CA): the median over the runs.
    pub measured: Duration,
    /// With the card model.
    pub modeled: Duration,
}

/// The phases of a renewal, and the totals.
#[derive(Clone, Debug)]
pub struct PhaseReport {
    /// Phases in flow order; the last is the client's own work.
    pub phases: Vec<Phase>,
    /// Whole renewal, measured (median).
    pub total: Duration,
    /// Whole renewal with the card model.
    pub modeled_total: Duration,
    /// Renewals measured.
    pub runs: usize,
}

const CARD_PHASES: [(&str, &[&str]); 5] = [
    ("card: key generation", &["GENERATE"]),
    ("card: signatures", &["SIGN"]),
    ("card: PIN and management key", &["VERIFY", "MGMT AUTH"]),
    ("card: install, delete", &["PUT DATA", "MOVE/DELETE KEY"]),
    (
        "card: reads",
        &[
            "SELECT",
            "GET DATA",
            "GET RESPONSE",
            "GET METADATA",
            "GET SERIAL",
            "GET VERSION",
            "OTHER",
            "MALFORMED",
        ],
    ),
];

/// Per phase (card phases, then CA, then client), the count and measured time of one run.
fn split(timings: &[Timing], total: Duration) -> Vec<(usize, Duration)> {
    let card: Vec<&Timing> = timings
        .iter()
        .filter(|t| t.what != CA_SUBMIT && t.what != CA_CACERTS)
        .collect();
    let mut rows: Vec<(usize, Duration)> = CARD_PHASES
        .iter()
        .map(|(_, commands)| {
            let of: Vec<_> = card.iter().filter(|t| commands.contains(&t.what)).collect();
            (of.len(), of.iter().map(|t| t.took).sum())
        })
        .collect();
    // The CA exchanges without the card exchanges made during them (the TLS signature).
    let ca: Vec<&Timing> = timings
        .iter()
        .filter(|t| t.what == CA_SUBMIT || t.what == CA_CACERTS)
        .collect();
    let inside: Duration = card
        .iter()
        .filter(|c| {
            ca.iter()
                .any(|x| c.start >= x.start && c.start + c.took <= x.start + x.took)
        })
        .map(|c| c.took)
        .sum();
    let ca_time = ca
        .iter()
        .map(|t| t.took)
        .sum::<Duration>()
        .saturating_sub(inside);
    rows.push((ca.len(), ca_time));
    let accounted: Duration = rows.iter().map(|r| r.1).sum();
    rows.push((0, total.saturating_sub(accounted)));
    rows
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Runs `runs` renewals (after one unmeasured warm-up), each with a fresh CA and card, and
/// reports the phases.
pub fn phases(
    mode: Mode,
    key: KeyAlgorithm,
    runs: usize,
    model: CardModel,
) -> Result<PhaseReport, String> {
    let mut per_run = Vec::new();
    let mut totals = Vec::new();
    for i in 0..=runs.max(1) {
        // A fresh CA and card each time: every run renews a card's first certificate.
        let world = World::new("", key)?;
        world.trace.clear();
        let mut service = world.traced_service(mode)?;
        let mut journal = world.journal()?;
        let started = std::time::Instant::now();
        let outcome = Renewal::new(
            world.token.clone(),
            &mut service,
            &mut journal,
            world.config(mode, 0, None),
        )
        .run()
        .map_err(|e| format!("renewal {i}: {e}"))?;
        let total = started.elapsed();
        if !matches!(
            outcome,
            renewal_client::client::processor::RenewalOutcome::Renewed { .. }
        ) {
            return Err(format!("renewal {i} did not renew: {outcome:?}"));
        }
        if i > 0 {
            per_run.push(split(&world.trace.timings(), total));
            totals.push(total);
        }
    }
    let names = CARD_PHASES.iter().map(|(n, _)| *n).chain([
        "CA: TLS handshake, HTTP, decision",
        "client: encoding, checks, journal",
    ]);
    let mut phases = Vec::new();
    for (i, name) in names.enumerate() {
        let count = per_run.first().map_or(0, |r| r[i].0);
        let measured = median(per_run.iter().map(|r| r[i].1).collect());
        let modeled = match i {
            0 => (model.per_apdu + model.keygen) * count as u32,
            1 => (model.per_apdu + model.sign) * count as u32,
            i if i < CARD_PHASES.len() => model.per_apdu * count as u32,
            _ => measured,
        };
        phases.push(Phase {
            name,
            count,
            measured,
            modeled,
        });
    }
    let modeled_total = phases.iter().map(|p| p.modeled).sum();
    Ok(PhaseReport {
        phases,
        total: median(totals),
        modeled_total,
        runs: per_run.len(),
    })
}

impl PhaseReport {
    /// A table, one phase per line.
    pub fn render(&self) -> String {
        let ms = |d: Duration| format!("{:>10.2} ms", d.as_secs_f64() * 1e3);
        let mut out = format!(
            "{:<36} {:>9} {:>13} {:>13}\n",
            "phase", "exchanges", "measured", "real card"
        );
        for p in &self.phases {
            out += &format!(
                "{:<36} {:>9} {} {}\n",
                p.name,
                if p.count == 0 {
                    "-".into()
                } else {
                    p.count.to_string()
                },
                ms(p.measured),
                ms(p.modeled)
            );
        }
        out += &format!(
            "{:<36} {:>9} {} {}\n(medians of {} renewals; the phases are medians each, so they need not add up to the total)\n",
            "total",
            "",
            ms(self.total),
            ms(self.modeled_total),
            self.runs
        );
        out
    }
}
