//! Time as a value: the CA reads the clock through this, tests move it forward instead of
//! sleeping (pending requests that resolve "after N seconds", certificate expiry).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use renewal_codec::x509::latest_time as latest;

/// System time plus an adjustable offset, or a fixed start plus an offset. Clones share the
/// offset: the TLS layer's clone sees the CA's clock advance.
#[derive(Clone, Debug)]
pub struct Clock {
    base: Option<SystemTime>,
    offset: Arc<Mutex<Duration>>,
}

impl Clock {
    /// The real clock (advanceable).
    pub fn system() -> Self {
        Self {
            base: None,
            offset: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// A clock frozen at `start` until advanced.
    pub fn fixed(start: SystemTime) -> Self {
        Self {
            base: Some(start),
            offset: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// Now (never past [`renewal_codec::x509::latest_time`]).
    pub fn now(&self) -> SystemTime {
        let offset = self.offset.lock().map(|o| *o).unwrap_or_default();
        self.base
            .unwrap_or_else(SystemTime::now)
            .checked_add(offset)
            .map_or(latest(), |t| t.min(latest()))
    }

    /// Moves time forward (saturating: see [`Clock::try_advance`] for a refusal instead).
    pub fn advance(&self, by: Duration) {
        if let Ok(mut o) = self.offset.lock() {
            *o = o.saturating_add(by);
        }
    }

    /// Moves time forward by `by`, unless that would take it past [`renewal_codec::x509::latest_time`]: the admin
    /// endpoint's number comes from outside.
    pub fn try_advance(&self, by: Duration) -> Result<(), crate::Error> {
        match self.now().checked_add(by) {
            Some(t) if t <= latest() => {
                self.advance(by);
                Ok(())
            }
            _ => Err(crate::Error::Setting {
                setting: "clock",
                reason: "the clock cannot go past 9999-12-31T23:59:59Z".into(),
            }),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        unix(self.now())
    }
}

/// The CA's clock as rustls's time: client certificates are checked for validity at the CA's
/// time, so a test that advances the clock sees the same validity in TLS as in the policy.
impl rustls::time_provider::TimeProvider for Clock {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(rustls::pki_types::UnixTime::since_unix_epoch)
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_stops_at_the_end_of_x509_time_instead_of_overflowing() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let clock = Clock::fixed(start);
        // From outside (the admin endpoint): refused, the clock unmoved.
        assert!(clock.try_advance(Duration::from_secs(u64::MAX)).is_err());
        assert_eq!(clock.now(), start);
        assert!(clock.try_advance(Duration::from_secs(86_400)).is_ok());
        assert_eq!(clock.now(), start + Duration::from_secs(86_400));
        // From the code (tests' sleepers): saturates, and reading it never panics.
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), latest());
        assert_eq!(unix(clock.now()), 253_402_300_799);
    }
}
