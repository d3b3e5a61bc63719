//! Time as a value: the CA reads the clock through this, tests move it forward instead of
//! sleeping (pending requests that resolve "after N seconds", certificate expiry).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

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

    /// Now.
    pub fn now(&self) -> SystemTime {
        let offset = self.offset.lock().map(|o| *o).unwrap_or_default();
        self.base.unwrap_or_else(SystemTime::now) + offset
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut o) = self.offset.lock() {
            *o += by;
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
