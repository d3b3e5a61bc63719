//! The seed's PIN-prompt numbers, reproduced by the host-middleware cache model, and our own
//! client's single prompt.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use renewal_client::token::{
    pin::{CountingPinSource, PinContext, PinRequest, StaticPin},
    pin_model::{CachePolicy, CachingMiddleware},
};

use PinContext::{Card, Tls};

/// Runs a sequence of PIN-needing accesses through middleware with `policy`; returns prompts.
fn prompts(policy: CachePolicy, accesses: &[PinContext]) -> (usize, Vec<PinContext>) {
    let user = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let host = CachingMiddleware::new(policy, Arc::clone(&user));
    for &context in accesses {
        let pin = host
            .access(&PinRequest {
                context,
                token: "card".into(),
                retries_left: None,
            })
            .unwrap();
        assert_eq!(pin.as_bytes(), b"123456");
    }
    let asked = user.prompts().into_iter().map(|p| p.context).collect();
    (user.count(), asked)
}

/// Build the request on the card, then TLS to send it, then the card again to install.
const NATURAL_ORDER: [PinContext; 3] = [Card, Tls, Card];
/// A dummy TLS call first, then all the card work.
const TLS_FIRST: [PinContext; 3] = [Tls, Card, Card];

#[test]
fn windows7_global_token_cache_natural_order_costs_three_prompts() {
    assert_eq!(
        prompts(CachePolicy::GlobalToken, &NATURAL_ORDER),
        (3, vec![Card, Tls, Card])
    );
}

#[test]
fn windows7_global_token_cache_tls_first_costs_two_prompts() {
    assert_eq!(
        prompts(CachePolicy::GlobalToken, &TLS_FIRST),
        (2, vec![Tls, Card])
    );
}

#[test]
fn per_context_caches_cost_two_prompts_in_either_order() {
    assert_eq!(prompts(CachePolicy::PerContext, &NATURAL_ORDER).0, 2);
    assert_eq!(prompts(CachePolicy::PerContext, &TLS_FIRST).0, 2);
}

#[test]
fn no_cache_prompts_every_time() {
    assert_eq!(prompts(CachePolicy::NoCache, &NATURAL_ORDER).0, 3);
}

#[test]
fn one_login_session_costs_one_prompt() {
    assert_eq!(
        prompts(CachePolicy::OneSession, &NATURAL_ORDER),
        (1, vec![Card])
    );
    assert_eq!(prompts(CachePolicy::OneSession, &TLS_FIRST), (1, vec![Tls]));
}
