//! The seed's PIN-cache model: how host middleware caches PINs decides how many prompts a
//! renewal costs. These are behaviours of the host's CSPs, not of the card, so they wrap a
//! [`PinSource`] rather than live in a token.
//!
//! * [`CachePolicy::PerContext`] — older Windows: each CSP caches its own PIN. Card, TLS, card
//!   = 2 prompts.
//! * [`CachePolicy::GlobalToken`] — Windows 7: one global token cache that each CSP overwrites
//!   and cannot read the other's entry from. Card, TLS, card = 3 prompts; TLS first = 2.
//! * [`CachePolicy::NoCache`] — every access prompts.
//! * [`CachePolicy::OneSession`] — one login shared by TLS and card (what our client does):
//!   1 prompt.

use std::sync::Mutex;

use super::pin::{Pin, PinContext, PinError, PinRequest, PinSource};

/// A host middleware caching policy.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash)]
pub enum CachePolicy {
    /// Each context caches its own PIN.
    PerContext,
    /// One global cache slot; a context can only use an entry it wrote itself.
    GlobalToken,
    /// No caching.
    NoCache,
    /// One shared login for all contexts.
    OneSession,
}

/// A [`PinSource`] as seen through host middleware with a cache policy.
pub struct CachingMiddleware<P> {
    policy: CachePolicy,
    inner: P,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    per_context: Vec<(PinContext, Pin)>,
    global: Option<(PinContext, Pin)>,
    session: Option<Pin>,
}

impl<P: PinSource> CachingMiddleware<P> {
    /// Wraps `inner` (the user) with `policy`.
    pub fn new(policy: CachePolicy, inner: P) -> Self {
        Self {
            policy,
            inner,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// A stack (card or TLS) needs the PIN for an operation: answered from the cache when the
    /// policy allows, else by prompting.
    pub fn access(&self, request: &PinRequest) -> Result<Pin, PinError> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| PinError::Unavailable("PIN cache poisoned".into()))?;
        let cached = match self.policy {
            CachePolicy::PerContext => cache
                .per_context
                .iter()
                .find(|(c, _)| *c == request.context)
                .map(|(_, p)| p.clone()),
            CachePolicy::GlobalToken => cache
                .global
                .as_ref()
                .filter(|(c, _)| *c == request.context)
                .map(|(_, p)| p.clone()),
            CachePolicy::NoCache => None,
            CachePolicy::OneSession => cache.session.clone(),
        };
        if let Some(pin) = cached {
            return Ok(pin);
        }
        let pin = self.inner.pin(request)?;
        match self.policy {
            CachePolicy::PerContext => cache.per_context.push((request.context, pin.clone())),
            CachePolicy::GlobalToken => cache.global = Some((request.context, pin.clone())),
            CachePolicy::NoCache => {}
            CachePolicy::OneSession => cache.session = Some(pin.clone()),
        }
        Ok(pin)
    }
}

impl<P: PinSource> PinSource for CachingMiddleware<P> {
    fn pin(&self, request: &PinRequest) -> Result<Pin, PinError> {
        self.access(request)
    }
}
