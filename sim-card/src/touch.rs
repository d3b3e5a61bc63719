//! The touch sensor: what a YubiKey's touch policy waits for. A key whose policy is "always"
//! makes every private-key operation wait for a touch; "cached" accepts a touch from the last
//! 15 seconds; a touch that does not come within the card's timeout (15 s on a YubiKey) fails
//! the operation with 6982, as the real card does.
//!
//! The sensor is the hardware, not the card's state: tests and the served card drive it — a
//! [`TouchSensor::press`] from another thread, the socket `sim-card serve --touch-socket`
//! listens on, or a simulated user who touches a moment after the card starts waiting
//! ([`TouchSensor::automatic`]).

use std::{
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// How long a "cached" touch counts (a YubiKey's: 15 seconds).
pub const CACHE: Duration = Duration::from_secs(15);
/// How long a YubiKey waits for a touch before failing the operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// When a key needs a touch (GENERATE's `AB` tag and GET METADATA's second policy byte).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub enum TouchPolicy {
    /// Never (0x01): the default.
    #[default]
    Never,
    /// Before every private-key operation (0x02).
    Always,
    /// A touch counts for 15 seconds (0x03).
    Cached,
}

impl TouchPolicy {
    /// The policy byte.
    pub fn id(self) -> u8 {
        match self {
            Self::Never => 0x01,
            Self::Always => 0x02,
            Self::Cached => 0x03,
        }
    }

    /// The policy a byte asks for (0x00: the default, never); `None` for one the card does
    /// not know.
    pub fn requested(id: u8) -> Option<Self> {
        match id {
            0x00 | 0x01 => Some(Self::Never),
            0x02 => Some(Self::Always),
            0x03 => Some(Self::Cached),
            _ => None,
        }
    }
}

/// Who touches the key.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Toucher {
    /// Only [`TouchSensor::press`] (a test, the touch socket).
    Manual,
    /// A user who touches this long after the card starts waiting.
    Automatic(Duration),
}

#[derive(Debug)]
struct State {
    toucher: Toucher,
    /// Touches not yet consumed by an operation.
    pending: u32,
    /// When the last touch was consumed (for "cached").
    last_used: Option<Instant>,
    /// Whether an operation is waiting now.
    waiting: bool,
    /// Operations that waited for a touch, and got one or not.
    waits: u64,
}

/// The sensor, shared between the card and whoever touches it.
#[derive(Clone, Debug)]
pub struct TouchSensor {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl Default for TouchSensor {
    /// Nobody touches it unless told to (a key with a touch policy then times out).
    fn default() -> Self {
        Self::with(Toucher::Manual)
    }
}

impl TouchSensor {
    fn with(toucher: Toucher) -> Self {
        Self {
            inner: Arc::new((
                Mutex::new(State {
                    toucher,
                    pending: 0,
                    last_used: None,
                    waiting: false,
                    waits: 0,
                }),
                Condvar::new(),
            )),
        }
    }

    /// Touched only by [`TouchSensor::press`].
    pub fn manual() -> Self {
        Self::with(Toucher::Manual)
    }

    /// A user who touches the key `after` the card starts waiting, every time.
    pub fn automatic(after: Duration) -> Self {
        Self::with(Toucher::Automatic(after))
    }

    /// A touch. One touch satisfies one waiting (or the next) operation.
    pub fn press(&self) {
        let (lock, cond) = &*self.inner;
        if let Ok(mut state) = lock.lock() {
            state.pending = state.pending.saturating_add(1);
            cond.notify_all();
        }
    }

    /// Whether an operation is waiting for a touch now (what the blinking LED tells a user).
    pub fn is_waiting(&self) -> bool {
        self.inner.0.lock().map(|s| s.waiting).unwrap_or(false)
    }

    /// How many operations have waited for a touch so far.
    pub fn waits(&self) -> u64 {
        self.inner.0.lock().map(|s| s.waits).unwrap_or(0)
    }

    /// Whether an operation on a key with `policy` may go ahead: at once for "never" (and for
    /// "cached" within [`CACHE`] of the last touch), else after a touch within `timeout`.
    pub fn confirm(&self, policy: TouchPolicy, timeout: Duration) -> bool {
        let (lock, cond) = &*self.inner;
        let Ok(mut state) = lock.lock() else {
            return false;
        };
        let now = Instant::now();
        match policy {
            TouchPolicy::Never => return true,
            TouchPolicy::Cached if state.last_used.is_some_and(|t| now - t < CACHE) => {
                return true;
            }
            TouchPolicy::Always | TouchPolicy::Cached => {}
        }
        state.waits += 1;
        // A touch given before the operation asked counts only if it is recent: one pressed
        // for the previous operation does not carry over.
        state.pending = 0;
        let deadline = now + timeout;
        if let Toucher::Automatic(after) = state.toucher
            && after < timeout
        {
            drop(state);
            std::thread::sleep(after);
            let Ok(mut state) = lock.lock() else {
                return false;
            };
            state.last_used = Some(Instant::now());
            return true;
        }
        state.waiting = true;
        loop {
            if state.pending > 0 {
                state.pending -= 1;
                state.waiting = false;
                state.last_used = Some(Instant::now());
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.waiting = false;
                return false;
            }
            state = match cond.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(_) => return false,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_touch_from_another_thread_lets_the_operation_go_and_none_times_out() {
        let sensor = TouchSensor::manual();
        assert!(sensor.confirm(TouchPolicy::Never, Duration::ZERO));
        assert!(!sensor.confirm(TouchPolicy::Always, Duration::from_millis(50)));
        let toucher = sensor.clone();
        let t = std::thread::spawn(move || {
            while !toucher.is_waiting() {
                std::thread::sleep(Duration::from_millis(5));
            }
            toucher.press();
        });
        assert!(sensor.confirm(TouchPolicy::Always, Duration::from_secs(5)));
        t.join().unwrap();
        // "cached": the touch just given counts; "always" wants a new one.
        assert!(sensor.confirm(TouchPolicy::Cached, Duration::ZERO));
        assert!(!sensor.confirm(TouchPolicy::Always, Duration::from_millis(20)));
        assert_eq!(sensor.waits(), 3);
    }

    #[test]
    fn an_early_touch_does_not_carry_over_to_a_later_operation() {
        let sensor = TouchSensor::manual();
        sensor.press();
        assert!(!sensor.confirm(TouchPolicy::Always, Duration::from_millis(20)));
    }
}
