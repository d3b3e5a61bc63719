//! A CMP PKIMessage from the network (what sim-ca's CMP endpoint and `renew`'s CMP client
//! parse): decode, the protection checked against the message's own first extraCert, every
//! request's proof of possession, the answer's certificates — a value or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_codec::{
    cmc::Limits,
    cmp::{PkiBody, PkiMessage},
};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = PkiMessage::parse(data, &Limits::default()) else {
        return;
    };
    if let Some(signer) = msg.protecting_certificate() {
        let _ = msg.verify_protection(signer.value());
    }
    match &msg.body {
        PkiBody::Ir(reqs) | PkiBody::Cr(reqs) | PkiBody::Kur(reqs) => {
            for r in reqs {
                let _ = r.verify_pop();
                let _ = r.cert_req.old_cert_id();
            }
        }
        PkiBody::Ip(rep) | PkiBody::Cp(rep) | PkiBody::Kup(rep) => {
            for r in &rep.response {
                let _ = r.certificate();
                let _ = r.status.failures();
            }
        }
        _ => {}
    }
    let _ = msg.header.implicit_confirm();
});
