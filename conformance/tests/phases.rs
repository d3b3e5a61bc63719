//! `conformance phases`: the phases of a renewal are found and timed, and the card model
//! replaces exactly the card's time.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use conformance::phases::{CardModel, phases};
use renewal_client::{client::Mode, token::KeyAlgorithm};

#[test]
fn a_fullcmc_renewal_splits_into_card_ca_and_client_phases() {
    let model = CardModel {
        per_apdu: Duration::from_millis(100),
        keygen: Duration::from_millis(500),
        sign: Duration::from_millis(150),
    };
    let report = phases(Mode::FullCmc, KeyAlgorithm::EcP256, 2, model).unwrap();
    println!("{}", report.render());
    let by_name = |prefix: &str| {
        report
            .phases
            .iter()
            .find(|p| p.name.starts_with(prefix))
            .unwrap()
    };
    // One key generated on the card; the PKCS#10, both CMS signers and the TLS client
    // signature are card signatures.
    assert_eq!(by_name("card: key generation").count, 1);
    assert!(by_name("card: signatures").count >= 4);
    assert!(by_name("CA:").count >= 1 && !by_name("CA:").measured.is_zero());
    let apdus: usize = report
        .phases
        .iter()
        .filter(|p| p.name.starts_with("card:"))
        .map(|p| p.count)
        .sum();
    let signs = by_name("card: signatures").count as u32;
    let card_model = model.per_apdu * apdus as u32 + model.keygen + model.sign * signs;
    let card_modeled: Duration = report
        .phases
        .iter()
        .filter(|p| p.name.starts_with("card:"))
        .map(|p| p.modeled)
        .sum();
    assert_eq!(card_modeled, card_model);
    assert!(report.modeled_total > card_model);
    assert!(report.total < report.modeled_total);
    assert_eq!(report.runs, 2);
}
