//! Time as a value: the CA reads the clock through this, tests move it forward instead of
//! sleeping (pending requests that resolve "after N seconds", certificate expiry).

use std::{
    sync::Mutex,
    time::{Duration, SystemTime},
};

/// System time plus an adjustable offset, or a fixed start plus an offset.
#[derive(Debug)]
pub struct Clock {
    base: Option<SystemTime>,
    offset: Mutex<Duration>,
}

impl Clock {
    /// The real clock (advanceable).
    pub fn system() -> Self {
        Self {
            base: None,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// A clock frozen at `start` until advanced.
    pub fn fixed(start: SystemTime) -> Self {
        Self {
            base: Some(start),
            offset: Mutex::new(Duration::ZERO),
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

/// Seconds since the Unix epoch (negative before it).
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
