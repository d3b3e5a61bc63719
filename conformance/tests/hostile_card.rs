//! A hostile card (or hostile middleware between us and the card): answers that are garbage,
//! truncated or oversized TLVs, wrong status words, a GENERATE whose public key is off the
//! curve, and a card whose GENERATE reports one key and signs with another. The `Token`
//! backend must answer with a typed error, never a panic; the renewal must notice a key swap
//! before anything is sent to the CA, and roll back without leaving an orphan container.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use conformance::harness::World;
use renewal_client::{
    client::{
        Mode,
        https::SharedToken,
        processor::{Renewal, RenewalOutcome, RollbackCause, Step},
    },
    cmc::{SignatureAlgorithm, Signer, SoftwareKey},
    token::{
        Capacity, Container, ContainerId, KeyAlgorithm, Token, TokenError, TokenInfo,
        pin::StaticPin,
        piv::{ApduTransport, ManagementKey, PivToken},
        transport::SimTransport,
    },
};
use sim_card::{CardConfig, PivApplet, SimCard};

/// How a hostile transport rewrites the card's answer to a command.
type Rewrite = dyn Fn(&[u8], Vec<u8>) -> Vec<u8> + Send;
/// A named way of making one.
type Hostility = (&'static str, Box<dyn Fn() -> Box<Rewrite>>);

/// The virtual card behind a transport that rewrites answers.
struct Tampering {
    inner: SimTransport,
    rewrite: Box<Rewrite>,
}

impl ApduTransport for Tampering {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TokenError> {
        let answer = self.inner.transmit(apdu)?;
        Ok((self.rewrite)(apdu, answer))
    }
}

fn card() -> Arc<Mutex<SimCard>> {
    Arc::new(Mutex::new(SimCard::new(
        PivApplet::new(&CardConfig::default()).unwrap(),
    )))
}

fn token(
    card: &Arc<Mutex<SimCard>>,
    rewrite: impl Fn(&[u8], Vec<u8>) -> Vec<u8> + Send + 'static,
) -> PivToken<Tampering> {
    PivToken::new(
        Tampering {
            inner: SimTransport::new(Arc::clone(card)),
            rewrite: Box::new(rewrite),
        },
        Arc::new(StaticPin::new("123456")),
        ManagementKey::factory_default(),
    )
}

const INS_GENERATE: u8 = 0x47;
const INS_GET_DATA: u8 = 0xCB;

/// Every token operation, each must return (Ok or a typed error) without panicking.
fn exercise(t: &mut dyn Token) -> Vec<Result<(), String>> {
    let slot = ContainerId("9a".into());
    let mut results = vec![
        t.info().map(|_| ()).map_err(|e| e.to_string()),
        t.containers().map(|_| ()).map_err(|e| e.to_string()),
        t.capacity().map(|_| ()).map_err(|e| e.to_string()),
    ];
    results.push(
        t.generate(KeyAlgorithm::EcP256)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    );
    results.push(
        t.sign(&slot, SignatureAlgorithm::ECDSA_SHA256, b"m")
            .map(|_| ())
            .map_err(|e| e.to_string()),
    );
    results.push(t.delete(&slot).map_err(|e| e.to_string()));
    results
}

#[test]
fn garbage_truncated_and_oversized_answers_are_typed_errors() {
    let rewrites: Vec<Hostility> = vec![
        (
            "garbage after SELECT",
            Box::new(|| {
                Box::new(|apdu: &[u8], answer: Vec<u8>| {
                    if apdu.get(1) == Some(&0xA4) {
                        answer
                    } else {
                        vec![0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00]
                    }
                })
            }),
        ),
        (
            "every data answer truncated by half",
            Box::new(|| {
                Box::new(|_: &[u8], answer: Vec<u8>| {
                    if answer.len() > 4 {
                        let mut short = answer[..(answer.len() - 2) / 2].to_vec();
                        short.extend_from_slice(&answer[answer.len() - 2..]);
                        short
                    } else {
                        answer
                    }
                })
            }),
        ),
        (
            "TLV lengths inflated to 0xFFFF",
            Box::new(|| {
                Box::new(|_: &[u8], mut answer: Vec<u8>| {
                    if answer.len() > 4 {
                        answer[1] = 0x82;
                        answer[2] = 0xFF;
                        answer[3] = 0xFF;
                    }
                    answer
                })
            }),
        ),
        (
            "status word only, no data",
            Box::new(|| Box::new(|_: &[u8], _: Vec<u8>| vec![0x90, 0x00])),
        ),
        (
            "empty answers",
            Box::new(|| Box::new(|_: &[u8], _: Vec<u8>| Vec::new())),
        ),
        (
            "a wrong status word for everything but SELECT",
            Box::new(|| {
                Box::new(|apdu: &[u8], answer: Vec<u8>| {
                    if apdu.get(1) == Some(&0xA4) {
                        answer
                    } else {
                        vec![0x6F, 0x00]
                    }
                })
            }),
        ),
        (
            "endless 61xx (more data) chains",
            Box::new(|| {
                Box::new(|_: &[u8], _: Vec<u8>| {
                    vec![0x00; 250].into_iter().chain([0x61, 0xFF]).collect()
                })
            }),
        ),
    ];
    for (what, make) in rewrites {
        let card = card();
        let mut t = token(&card, make());
        let results = exercise(&mut t);
        assert!(
            results.iter().any(Result::is_err),
            "{what}: a hostile card went unnoticed: {results:?}"
        );
    }
}

#[test]
fn a_generated_point_off_the_curve_is_refused() {
    let card = card();
    let mut t = token(&card, |apdu: &[u8], mut answer: Vec<u8>| {
        if apdu.get(1) == Some(&INS_GENERATE) && answer.len() > 70 {
            // 7F49 41 86 41 04 X Y 90 00: flip a bit of Y.
            let n = answer.len();
            answer[n - 3] ^= 0x01;
        }
        answer
    });
    let err = t.generate(KeyAlgorithm::EcP256).unwrap_err();
    assert!(matches!(err, TokenError::Malformed(_)), "{err}");
    let _ = INS_GET_DATA;
}

/// A token that reports, for every key it generates, another (valid) public key than the one
/// it signs with: what a buggy or malicious middleware could do.
struct LyingToken {
    inner: SharedToken,
    decoy: SoftwareKey,
}

impl Token for LyingToken {
    fn info(&mut self) -> Result<TokenInfo, TokenError> {
        self.inner.lock().unwrap().info()
    }
    fn containers(&mut self) -> Result<Vec<Container>, TokenError> {
        self.inner.lock().unwrap().containers()
    }
    fn capacity(&mut self) -> Result<Capacity, TokenError> {
        self.inner.lock().unwrap().capacity()
    }
    fn generate(&mut self, algorithm: KeyAlgorithm) -> Result<Container, TokenError> {
        let mut c = self.inner.lock().unwrap().generate(algorithm)?;
        c.public_key = Some(self.decoy.public_key().clone());
        Ok(c)
    }
    fn sign(
        &mut self,
        id: &ContainerId,
        algorithm: SignatureAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        self.inner.lock().unwrap().sign(id, algorithm, message)
    }
    fn install_certificate(
        &mut self,
        id: &ContainerId,
        certificate: &[u8],
    ) -> Result<(), TokenError> {
        self.inner
            .lock()
            .unwrap()
            .install_certificate(id, certificate)
    }
    fn delete(&mut self, id: &ContainerId) -> Result<(), TokenError> {
        self.inner.lock().unwrap().delete(id)
    }
    fn supersede(
        &mut self,
        old: &ContainerId,
        new: &ContainerId,
    ) -> Result<ContainerId, TokenError> {
        self.inner.lock().unwrap().supersede(old, new)
    }
}

#[test]
fn a_card_that_signs_with_another_key_than_it_generated_is_caught_before_submitting() {
    for mode in Mode::ALL {
        let mut world = World::new("", KeyAlgorithm::EcP256).unwrap();
        let honest = world.token.clone();
        world.token = Arc::new(Mutex::new(Box::new(LyingToken {
            inner: honest,
            decoy: SoftwareKey::generate_p256().unwrap(),
        })));
        let mut service = world.service(mode).unwrap();
        let mut journal = world.journal().unwrap();
        let outcome = Renewal::new(
            world.token.clone(),
            &mut service,
            &mut journal,
            world.config(mode, 0, None),
        )
        .run()
        .unwrap();
        let RenewalOutcome::RolledBack { reason } = outcome else {
            panic!("{mode:?}: {outcome:?}")
        };
        assert!(
            matches!(
                reason,
                RollbackCause::Card {
                    step: Step::BuildRequest,
                    ..
                }
            ) && reason.to_string().contains("do not match"),
            "{mode:?}: {reason}"
        );
        // Nothing reached the CA's decision, and the card is as before (one container, the
        // old certificate).
        let ca = world.ca.as_ref().unwrap();
        assert!(
            ca.audit_trail().is_empty(),
            "{mode:?}: {:?}",
            ca.audit_trail()
        );
        let cert = world.check_invariant().unwrap();
        assert_eq!(cert, world.old_cert, "{mode:?}");
    }
}

/// A card that answers GENERATE with a key of another type than asked (P-384 for a P-256
/// certificate): the key goes, the certificate stays, nothing reaches the CA — the renewal
/// never changes the key type the organisation chose.
#[test]
fn a_card_that_generates_another_key_type_is_rolled_back() {
    let mut world = World::new("", KeyAlgorithm::EcP256).unwrap();
    let honest = world.token.clone();
    world.token = Arc::new(Mutex::new(Box::new(LyingToken {
        inner: honest,
        decoy: SoftwareKey::generate_p384().unwrap(),
    })));
    let mut service = world.service(Mode::FullCmc).unwrap();
    let mut journal = world.journal().unwrap();
    let outcome = Renewal::new(
        world.token.clone(),
        &mut service,
        &mut journal,
        world.config(Mode::FullCmc, 0, None),
    )
    .run()
    .unwrap();
    assert_eq!(
        outcome,
        RenewalOutcome::RolledBack {
            reason: RollbackCause::Request("the card generated P-384 when asked for P-256".into())
        }
    );
    assert!(world.ca.as_ref().unwrap().audit_trail().is_empty());
    assert_eq!(world.check_invariant().unwrap(), world.old_cert);
}
