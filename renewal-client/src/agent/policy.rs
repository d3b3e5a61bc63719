//! When to renew, and when to try again: pure functions of the certificate's validity, the
//! clock and the failures so far (no I/O, so every rule is tested without waiting).
//!
//! * Renew once the remaining validity falls below `renew_before` — a duration (`"14d"`) or a
//!   fraction of the lifetime (`"1/3"`, `"33%"`; default one third, as `step ca renew`'s 2/3 of
//!   the lifetime) — minus a jitter of up to 5 % of the lifetime (at most a day), derived from
//!   the entry's name so a fleet does not renew in the same second but one card always picks the
//!   same moment.
//! * Never renew a certificate younger than `min_age` (default one hour): a clock that jumped
//!   back, or a CA that issued a short certificate, must not make the agent renew in a loop.
//! * After a failure, wait `retry_min` doubled per failure up to `retry_max`, ±25 % jitter, at
//!   least the CA's `Retry-After`, and never longer than half the remaining validity
//!   (certmonger's rule: the closer the expiry, the more often it tries).

use std::time::{Duration, SystemTime};

use crate::cmc::InvalidValue;

/// How long before expiry to renew.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RenewBefore {
    /// A fixed time before `notAfter`.
    Duration(Duration),
    /// A fraction of the lifetime (`notAfter - notBefore`), in (0, 1].
    Fraction(f64),
}

impl Default for RenewBefore {
    fn default() -> Self {
        Self::Fraction(1.0 / 3.0)
    }
}

impl std::str::FromStr for RenewBefore {
    type Err = InvalidValue;

    /// `"14d"`, `"36h"`, `"90m"`, `"30s"`; `"1/3"`; `"33%"`.
    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        let bad = |expected: &str| InvalidValue::new("renew_before", text.trim(), expected);
        let text = text.trim();
        let fraction = if let Some((a, b)) = text.split_once('/') {
            let (a, b): (f64, f64) = (
                a.trim().parse().map_err(|_| bad("not a fraction"))?,
                b.trim().parse().map_err(|_| bad("not a fraction"))?,
            );
            Some(a / b)
        } else if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad("not a percentage"))?;
            Some(p / 100.0)
        } else {
            None
        };
        match fraction {
            Some(f) if f > 0.0 && f <= 1.0 => Ok(Self::Fraction(f)),
            Some(_) => Err(bad("the fraction must be in (0, 1]")),
            None => parse_duration(text).map(Self::Duration),
        }
    }
}

/// `"14d"`, `"36h"`, `"90m"`, `"30s"` (one unit; a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, InvalidValue> {
    let text = text.trim();
    let bad = |expected: String| InvalidValue::new("duration", text, expected);
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| bad("a duration such as 14d, 36h, 90m or 30s".into()))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad(format!("unknown unit {unit:?} (s, m, h, d, w)"))),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| bad("too long".into()))
}

/// The renewal policy of one tracked certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// When to renew.
    pub renew_before: RenewBefore,
    /// Certificates younger than this are left alone.
    pub min_age: Duration,
    /// The first retry delay.
    pub retry_min: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            renew_before: RenewBefore::default(),
            min_age: Duration::from_secs(3_600),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3_600),
        }
    }
}

/// The longest a CA's `Retry-After` makes the agent wait before it asks again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// A stable pseudo-random number in [0, 1) from a name and a counter (FNV-1a, then a mix):
/// jitter that differs between cards and repeats for one card.
pub fn unit_hash(name: &str, counter: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain(counter.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn lifetime(not_before: SystemTime, not_after: SystemTime) -> Duration {
    not_after.duration_since(not_before).unwrap_or_default()
}

impl Policy {
    /// The moment to renew a certificate valid from `not_before` to `not_after`.
    pub fn renew_at(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> SystemTime {
        let life = lifetime(not_before, not_after);
        let before = match self.renew_before {
            RenewBefore::Duration(d) => d,
            RenewBefore::Fraction(f) => life.mul_f64(f),
        };
        let jitter = life
            .mul_f64(0.05)
            .min(Duration::from_secs(86_400))
            .mul_f64(unit_hash(name, 0));
        let at = not_after.checked_sub(before + jitter).unwrap_or(not_before);
        at.max(not_before + self.min_age)
    }

    /// Whether the certificate is due at `now`.
    pub fn due(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        now: SystemTime,
    ) -> bool {
        now >= self.renew_at(name, not_before, not_after)
    }

    /// When to try again after the `failures`-th failure in a row (1 for the first), at `now`,
    /// with the certificate expiring at `not_after` and the CA's `Retry-After` if it gave one.
    pub fn retry_at(
        &self,
        name: &str,
        failures: u32,
        now: SystemTime,
        not_after: SystemTime,
        retry_after: Option<Duration>,
    ) -> SystemTime {
        let doubling = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        let base = self.retry_min.saturating_mul(doubling).min(self.retry_max);
        let jittered = base.mul_f64(0.75 + 0.5 * unit_hash(name, u64::from(failures)));
        let remaining = not_after.duration_since(now).unwrap_or_default();
        // Never wait past half the remaining validity (but at least the minimum delay, so an
        // expired certificate is not hammered).
        let capped = jittered
            .min(remaining / 2)
            .max(self.retry_min.min(jittered));
        // The CA's Retry-After is honoured up to a week: it is the network's number (and the
        // journal's, across restarts), and an absurd one — years, or 2^64 - 1 seconds, which
        // overflowed the clock and stopped every pass of the agent — must not park or crash it.
        let asked = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
        now.checked_add(capped.max(asked)).unwrap_or(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * (20_000 + days as u32)
    }

    #[test]
    fn renew_before_parses_durations_fractions_and_percentages() {
        assert_eq!(
            "14d".parse::<RenewBefore>().unwrap(),
            RenewBefore::Duration(DAY * 14)
        );
        assert_eq!(
            "36h".parse::<RenewBefore>().unwrap(),
            RenewBefore::Duration(Duration::from_secs(36 * 3600))
        );
        assert_eq!(
            "1/4".parse::<RenewBefore>().unwrap(),
            RenewBefore::Fraction(0.25)
        );
        assert_eq!(
            "50%".parse::<RenewBefore>().unwrap(),
            RenewBefore::Fraction(0.5)
        );
        for bad in ["", "0/3", "150%", "3x", "d", "1/0"] {
            assert!(bad.parse::<RenewBefore>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_third_of_a_year_certificate_renews_four_months_before_expiry_within_the_jitter() {
        let policy = Policy::default();
        let (nb, na) = (t(0), t(360));
        let at = policy.renew_at("alice", nb, na);
        assert!(at <= t(240) && at >= t(239), "{at:?}");
        assert!(!policy.due("alice", nb, na, t(200)));
        assert!(policy.due("alice", nb, na, t(240)));
        // The same name always gets the same moment; another name (almost surely) another.
        assert_eq!(at, policy.renew_at("alice", nb, na));
        assert_ne!(at, policy.renew_at("bob", nb, na));
    }

    #[test]
    fn a_young_certificate_is_left_alone_even_when_renew_before_covers_its_life() {
        let policy = Policy {
            renew_before: RenewBefore::Fraction(1.0),
            ..Policy::default()
        };
        let nb = t(0);
        assert!(!policy.due("a", nb, t(10), nb + Duration::from_secs(1800)));
        assert!(policy.due("a", nb, t(10), nb + Duration::from_secs(3601)));
    }

    #[test]
    fn retries_back_off_exponentially_but_never_past_half_the_remaining_validity() {
        let policy = Policy::default();
        let now = t(100);
        let far = t(400);
        let delays: Vec<Duration> = (1..=12)
            .map(|n| {
                policy
                    .retry_at("a", n, now, far, None)
                    .duration_since(now)
                    .unwrap()
            })
            .collect();
        assert!(delays[0] >= Duration::from_secs(45) && delays[0] <= Duration::from_secs(75));
        assert!(delays[3] > delays[0] * 4);
        assert!(delays.iter().all(|d| *d <= policy.retry_max.mul_f64(1.25)));
        // Two hours left: at most an hour.
        let soon = now + Duration::from_secs(7200);
        let d = policy
            .retry_at("a", 12, now, soon, None)
            .duration_since(now)
            .unwrap();
        assert!(d <= Duration::from_secs(3600), "{d:?}");
        // The CA's Retry-After wins over a shorter delay.
        let d = policy
            .retry_at("a", 1, now, far, Some(Duration::from_secs(900)))
            .duration_since(now)
            .unwrap();
        assert_eq!(d, Duration::from_secs(900));
    }

    #[test]
    fn an_absurd_retry_after_waits_a_week_and_never_overflows_the_clock() {
        let policy = Policy::default();
        let now = t(100);
        let far = t(4000);
        for asked in [
            Duration::from_secs(30 * 86_400),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            let d = policy
                .retry_at("a", 1, now, far, Some(asked))
                .duration_since(now)
                .unwrap();
            assert_eq!(d, MAX_RETRY_AFTER, "{asked:?}");
        }
    }
}
