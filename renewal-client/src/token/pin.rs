//! Who supplies the PIN. Every request carries its context (card or TLS stack, which token,
//! tries left), so prompts can be counted and attributed. PINs are zeroized and never printed.

use std::sync::Mutex;

use zeroize::Zeroizing;

/// Which host stack asks (the seed's two CSPs).
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub enum PinContext {
    /// Smart-card operations (key generation, signing, installing).
    Card,
    /// The TLS client-authentication signature.
    Tls,
}

/// One request for the PIN.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct PinRequest {
    /// Who asks.
    pub context: PinContext,
    /// Which token (serial or label).
    pub token: String,
    /// Tries left before the PIN blocks, when the card says.
    pub retries_left: Option<u8>,
}

/// A PIN, zeroized on drop.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN.
    pub fn new(pin: impl Into<String>) -> Self {
        Self(Zeroizing::new(pin.into()))
    }

    /// The PIN's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(..)")
    }
}

/// Why no PIN was supplied.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum PinError {
    /// The user cancelled.
    #[error("PIN entry cancelled")]
    Cancelled,
    /// The configured source has no PIN (e.g. an unset environment variable).
    #[error("no PIN available: {0}")]
    Unavailable(String),
}

/// Supplies PINs. `Send + Sync` because the TLS signer runs on another thread.
pub trait PinSource: Send + Sync {
    /// Returns the PIN for `request`.
    fn pin(&self, request: &PinRequest) -> Result<Pin, PinError>;
}

/// A fixed PIN (tests, automation from a file or variable read once).
pub struct StaticPin(Pin);

impl StaticPin {
    /// Always answers `pin`.
    pub fn new(pin: &str) -> Self {
        Self(Pin::new(pin))
    }
}

impl PinSource for StaticPin {
    fn pin(&self, _: &PinRequest) -> Result<Pin, PinError> {
        Ok(self.0.clone())
    }
}

/// Counts and records every prompt it forwards (the conformance suite's prompt counter).
pub struct CountingPinSource<P> {
    inner: P,
    prompts: Mutex<Vec<PinRequest>>,
}

impl<P: PinSource> CountingPinSource<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            prompts: Mutex::new(Vec::new()),
        }
    }

    /// All prompts so far, in order.
    pub fn prompts(&self) -> Vec<PinRequest> {
        self.prompts.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// How many prompts so far.
    pub fn count(&self) -> usize {
        self.prompts.lock().map(|p| p.len()).unwrap_or(0)
    }
}

impl<P: PinSource> PinSource for CountingPinSource<P> {
    fn pin(&self, request: &PinRequest) -> Result<Pin, PinError> {
        if let Ok(mut p) = self.prompts.lock() {
            p.push(request.clone());
        }
        self.inner.pin(request)
    }
}

impl<P: PinSource + ?Sized> PinSource for std::sync::Arc<P> {
    fn pin(&self, request: &PinRequest) -> Result<Pin, PinError> {
        (**self).pin(request)
    }
}
