//! Criterion benchmarks for cardrenew: CMC build, encode, parse and verify beside the signature
//! floor and OpenSSL (`benches/cmc.rs`); a whole renewal over loopback mutual TLS
//! (`benches/renewal.rs`). The library holds the peer ([`openssl_peer`](mod@openssl_peer)) and what sets it up
//! from a [`Sample`], so the benchmarks and the tests that check the peer share them.

pub mod openssl_peer;

use der::{Decode, Encode};
use openssl_peer::{ExtensionSpec, OpensslPeer};
use renewal_codec::{
    cmc::{SoftwareKey, oids, request::build_renewal_pkcs10},
    sample::Sample,
};
use x509_cert::ext::Extension;

/// Why the peer could not be set up.
pub type SetupError = Box<dyn std::error::Error>;

fn pkcs8_der(key: &SoftwareKey) -> Result<Vec<u8>, SetupError> {
    let pem = key.to_pkcs8_pem()?;
    let (_, der) = der::pem::decode_vec(pem.as_bytes())?;
    Ok(der)
}

/// The extensions our builder requests for `sample`'s renewal, as the peer takes them.
fn requested_extensions(sample: &Sample) -> Result<Vec<ExtensionSpec>, SetupError> {
    let req = build_renewal_pkcs10(&sample.old_cert, &sample.new_key, None)?;
    let attr = req
        .value()
        .info
        .attributes
        .iter()
        .find(|a| a.oid == oids::ID_EXTENSION_REQUEST)
        .ok_or("our PKCS#10 has no extensionRequest")?;
    let value = attr.values.iter().next().ok_or("empty extensionRequest")?;
    let exts: Vec<Extension> = Vec::from_der(&value.to_der()?)?;
    Ok(exts
        .into_iter()
        .map(|e| {
            (
                e.extn_id.to_string(),
                e.critical,
                e.extn_value.as_bytes().to_vec(),
            )
        })
        .collect())
}

/// OpenSSL set up to do what `renewal_codec` does for `sample`: same keys, same old
/// certificate, same requested extensions.
pub fn openssl_peer(sample: &Sample) -> Result<OpensslPeer, SetupError> {
    Ok(OpensslPeer::new(
        sample.old_cert.der(),
        &pkcs8_der(&sample.old_key)?,
        &pkcs8_der(&sample.new_key)?,
        requested_extensions(sample)?,
    )?)
}
