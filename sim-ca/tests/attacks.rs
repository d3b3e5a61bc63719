//! The attack corpus: requests an attacker holding a valid smart-card certificate (and its
//! key) would send to get more than a renewal of that certificate. Each test failed before its
//! fix (the six findings of the hostile-input review are marked) and checks the exact answer,
//! and that nothing was issued.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Client, desk::Desk, parse, sign, sign_with};
use der::{
    Decode, Encode,
    asn1::{Any, BitString, ObjectIdentifier, OctetString, SetOfVec},
};
use renewal_codec::cmc::{
    Outcome, PublicKey, Retained, SignError, SignatureAlgorithm, Signer, SoftwareKey,
    microsoft::NameValuePair,
    oids,
    pki::{PkiData, TaggedRequest},
    public_key::Curve,
    request::build_renewal_pkcs10,
    status::CmcFailInfo,
    verify_request::RequestContent,
};
use sim_ca::{
    Ca,
    service::SimpleReply,
    store::{AuditOutcome, AuditRecord, Store},
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{Certificate, request::CertReq};

/// The PKCS#10 of the client's regular request and its PKIData.
fn parts(client: &Client) -> (PkiData, CertReq) {
    let parsed = renewal_codec::cmc::parse_request(&client.request(), &Default::default()).unwrap();
    let RequestContent::Cmc(pki) = parsed.content else {
        panic!()
    };
    let TaggedRequest::Tcr(tcr) = &pki.req_sequence[0] else {
        panic!()
    };
    let req = tcr.certification_request.value().clone();
    (pki, req)
}

/// A full CMC renewal request whose PKCS#10 carries `spki` and is signed by `pop_key` (whatever
/// the SPKI says), whose first CMS signer is named by the SPKI's key identifier and signed by
/// `pop_key`, the second by the old key: exactly what an attacker holding both keys can send.
fn forge(
    client: &Client,
    spki: SubjectPublicKeyInfoOwned,
    pop_key: &dyn Signer,
    edit: impl FnOnce(&mut CertReq, &mut PkiData),
) -> Vec<u8> {
    let (mut pki, mut req) = parts(client);
    req.info.public_key = spki.clone();
    req.algorithm = pop_key.algorithm().x509_identifier().unwrap();
    edit(&mut req, &mut pki);
    let sig = pop_key.sign(&req.info.to_der().unwrap()).unwrap();
    req.signature = BitString::from_bytes(&sig).unwrap();
    let TaggedRequest::Tcr(tcr) = &mut pki.req_sequence[0] else {
        panic!()
    };
    tcr.certification_request = Retained::from_value(req).unwrap();
    sign_with(client, &pki, &spki, pop_key)
}

fn spki_with(
    spki: &SubjectPublicKeyInfoOwned,
    subject_public_key: &[u8],
) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: spki.algorithm.clone(),
        subject_public_key: BitString::from_bytes(subject_public_key).unwrap(),
    }
}

fn old_spki(client: &Client) -> SubjectPublicKeyInfoOwned {
    client
        .old_cert
        .value()
        .tbs_certificate()
        .subject_public_key_info()
        .clone()
}

/// The compressed SEC1 form of an uncompressed P-256 point.
fn compress(point: &[u8]) -> Vec<u8> {
    let mut out = vec![if point[64] & 1 == 1 { 0x03 } else { 0x02 }];
    out.extend_from_slice(&point[1..33]);
    out
}

// ---- finding 1: key reuse through re-encoding -------------------------------------------

#[test]
fn finding_1_the_old_key_as_a_compressed_point_is_key_reuse() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let old = old_spki(&client);
        let compressed = spki_with(&old, &compress(old.subject_public_key.raw_bytes()));
        // The compressed point decodes to the old key: same key, other encoding.
        assert_eq!(
            PublicKey::from_spki(&compressed).unwrap(),
            PublicKey::from_spki(&old).unwrap()
        );
        let request = forge(&client, compressed, &client.old_key, |_, _| {});
        desk.assert_rejected(&client, &request, CmcFailInfo::NoKeyReuse, "0x80070057");
    }
}

#[test]
fn finding_1_a_bit_string_wrapping_the_old_spki_is_not_a_key() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let old = old_spki(&client);
        let wrapped = spki_with(&old, &old.to_der().unwrap());
        let request = forge(&client, wrapped, &client.old_key, |_, _| {});
        let (fail, text) = desk.rejected(&client, &request);
        assert_eq!(fail, Some(CmcFailInfo::BadAlg), "{text}");
        assert!(text.starts_with("0x80090015"), "{text}");
        assert!(text.contains("malformed public key"), "{text}");
        assert_eq!(desk.issued(), 0);
    }
}

#[test]
fn a_fresh_compressed_key_is_certified_in_the_canonical_uncompressed_form() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let fresh = SoftwareKey::generate_p256().unwrap();
        let point = fresh.public_key().subject_public_key.raw_bytes().to_vec();
        let compressed = spki_with(fresh.public_key(), &compress(&point));
        let request = forge(&client, compressed, &fresh, |_, _| {});
        let resp = parse(&desk.handle_cmc(&request, client.old_cert.der()).body);
        assert_eq!(resp.outcome, Outcome::Issued, "{:?}", resp.status_string);
        let certified = resp.certificates[0]
            .value()
            .tbs_certificate()
            .subject_public_key_info()
            .clone();
        assert_eq!(&certified, fresh.public_key(), "not the canonical encoding");
        assert_eq!(certified.subject_public_key.raw_bytes()[0], 0x04);
    }
}

// ---- finding 2: weak key by padding -------------------------------------------------------

/// An RSA key whose private half lives in a PEM file, signing through the `openssl` CLI (a
/// 1024- or 3072-bit key, which the software key type does not make).
struct OpensslRsa {
    key: std::path::PathBuf,
    spki: SubjectPublicKeyInfoOwned,
}

impl OpensslRsa {
    fn load(name: &str) -> Self {
        let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let out = Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key)
            .output()
            .expect("openssl (Debian package openssl) is needed by this test");
        assert!(out.status.success());
        Self {
            key,
            spki: SubjectPublicKeyInfoOwned::from_der(&out.stdout).unwrap(),
        }
    }
}

impl Signer for OpensslRsa {
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA_PKCS1_SHA256
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        use std::io::Write;
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|_| SignError::Software)?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message)
            .map_err(|_| SignError::Software)?;
        let out = child.wait_with_output().map_err(|_| SignError::Software)?;
        Ok(out.stdout)
    }
}

#[test]
fn finding_2_rsa_1024_padded_to_look_like_2048_is_refused() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let weak = OpensslRsa::load("rsa1024.key");
        let mut padded = weak.spki.subject_public_key.raw_bytes().to_vec();
        let rsa_public_key_len = padded.len();
        padded.extend(std::iter::repeat_n(0u8, 270 - rsa_public_key_len));
        let padded = spki_with(&weak.spki, &padded);
        assert_eq!(padded.subject_public_key.raw_bytes().len(), 270);
        let request = forge(&client, padded, &weak, |_, _| {});
        let (fail, text) = desk.rejected(&client, &request);
        assert_eq!(fail, Some(CmcFailInfo::BadAlg), "{text}");
        assert!(text.contains("trailing bytes"), "{text}");
        assert_eq!(desk.issued(), 0);
    }
}

#[test]
fn rsa_keys_are_judged_by_their_modulus_bits() {
    // RSA-1024 is refused by every template; RSA-3072 by one that allows only RSA-2048 (the
    // built-in ones allow it: cards renew RSA-3072 keys).
    let only_2048 = format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nallowed_keys = [\"p256\", \"rsa2048\"]\n",
        renewal_codec::sample::SAMPLE_TEMPLATE_OID
    );
    for desk in Desk::all(&only_2048) {
        let ca = desk.ca();
        let client = Client::new(ca);
        for (file, bits) in [("rsa1024.key", 1024), ("rsa3072.key", 3072)] {
            let key = OpensslRsa::load(file);
            assert_eq!(PublicKey::from_spki(&key.spki).unwrap().bits(), bits);
            let request = forge(&client, key.spki.clone(), &key, |_, _| {});
            let (fail, text) = desk.rejected(&client, &request);
            assert_eq!(fail, Some(CmcFailInfo::BadAlg), "{text}");
            assert!(text.starts_with("0x80094811"), "{text}"); // CERTSRV_E_KEY_LENGTH
            assert!(text.contains(&format!("{bits} bits")), "{text}");
        }
        assert_eq!(desk.issued(), 0);
    }
}

// ---- finding 6: unsupported curves are badAlg, not popFailed --------------------------------

#[test]
fn finding_6_p521_and_secp256k1_are_bad_algorithms() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        for (curve, name, len) in [
            ("1.3.132.0.35", "secp521r1", 133),
            ("1.3.132.0.10", "secp256k1", 65),
        ] {
            let spki = SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: oids::EC_PUBLIC_KEY,
                    parameters: Some(
                        Any::encode_from(&ObjectIdentifier::new_unwrap(curve)).unwrap(),
                    ),
                },
                subject_public_key: BitString::from_bytes(&{
                    let mut p = vec![0x04];
                    p.extend(std::iter::repeat_n(0x11, len - 1));
                    p
                })
                .unwrap(),
            };
            let request = forge(&client, spki, &client.new_key, |_, _| {});
            let (fail, text) = desk.rejected(&client, &request);
            assert_eq!(fail, Some(CmcFailInfo::BadAlg), "{name}: {text}");
            assert!(text.starts_with("0x80090008"), "{name}: {text}"); // NTE_BAD_ALGID
            assert!(text.contains(name), "{name}: {text}");
        }
    }
}

#[test]
fn malformed_keys_are_refused_as_bad_keys() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let new = client.new_key.public_key().clone();
        let point = new.subject_public_key.raw_bytes().to_vec();
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        let mut trailing = point.clone();
        trailing.push(0);
        let hybrid = {
            let mut p = point.clone();
            p[0] = 0x06 | (point[64] & 1);
            p
        };
        let identity = vec![0x00];
        for (what, bytes) in [
            ("off the curve", off_curve),
            ("trailing byte", trailing),
            ("hybrid form", hybrid),
            ("point at infinity", identity),
        ] {
            let request = forge(&client, spki_with(&new, &bytes), &client.new_key, |_, _| {});
            let (fail, text) = desk.rejected(&client, &request);
            assert_eq!(fail, Some(CmcFailInfo::BadAlg), "{what}: {text}");
            assert!(text.starts_with("0x80090015"), "{what}: {text}");
        }
        // Explicit curve parameters instead of a named curve.
        let explicit = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: oids::EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&der::asn1::Null).unwrap()),
            },
            subject_public_key: new.subject_public_key.clone(),
        };
        let (fail, _) = desk.rejected(
            &client,
            &forge(&client, explicit, &client.new_key, |_, _| {}),
        );
        assert_eq!(fail, Some(CmcFailInfo::BadAlg));
        // A key algorithm nobody renews with (Ed25519).
        let ed = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.3.101.112"),
                parameters: None,
            },
            subject_public_key: BitString::from_bytes(&[7; 32]).unwrap(),
        };
        let (fail, text) = desk.rejected(&client, &forge(&client, ed, &client.new_key, |_, _| {}));
        assert_eq!(fail, Some(CmcFailInfo::BadAlg), "{text}");
        assert_eq!(desk.issued(), 0);
        let _ = Curve::P256;
    }
}

// ---- finding 3: duplicate issuance -------------------------------------------------------

#[test]
fn finding_3_transaction_id_and_sender_nonce_are_required() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        for (control, oid) in [
            ("transactionId", oids::ID_CMC_TRANSACTION_ID),
            ("senderNonce", oids::ID_CMC_SENDER_NONCE),
        ] {
            let (mut pki, _) = parts(&client);
            pki.control_sequence.retain(|c| c.attr_type != oid);
            let request = sign(&client, &pki);
            let before = desk.issued();
            let (fail, text) = desk.rejected(&client, &request);
            assert_eq!(fail, Some(CmcFailInfo::BadRequest), "{text}");
            assert!(text.starts_with("0x8007000D"), "{text}");
            assert!(text.contains(&format!("no {control} control")), "{text}");
            assert_eq!(desk.issued(), before);
        }
    }
}

fn simple_serial(reply: &SimpleReply) -> Vec<u8> {
    let SimpleReply::Issued(der) = reply else {
        panic!("expected a certificate, got {reply:?}")
    };
    let resp = parse(der);
    resp.certificates[0]
        .value()
        .tbs_certificate()
        .serial_number()
        .as_bytes()
        .to_vec()
}

#[test]
fn finding_3_simplereenroll_sent_twice_yields_one_certificate() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let p10 = build_renewal_pkcs10(&client.old_cert, &client.new_key, None).unwrap();
        let first = desk.simple(p10.der(), client.old_cert.der());
        // Re-signed (a fresh ECDSA signature): the same request for the same key.
        let again = build_renewal_pkcs10(&client.old_cert, &client.new_key, None).unwrap();
        let second = desk.simple(again.der(), client.old_cert.der());
        assert_eq!(simple_serial(&first), simple_serial(&second));
        assert_eq!(desk.issued(), 1);
        let trail = desk.audit_trail();
        let outcomes: Vec<&str> = trail.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["issued", "replay-answered"]);
    }
}

#[test]
fn a_new_key_for_an_already_renewed_certificate_is_allowed_while_it_is_valid() {
    // Policy (as ADCS): the old certificate stays valid until it expires, so a second renewal
    // onto another key (a client that rolled back after the CA issued) gets a second
    // certificate, and the audit trail shows both.
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        for _ in 0..2 {
            let resp = parse(
                &desk
                    .handle_cmc(&client.request_for_another_key(), client.old_cert.der())
                    .body,
            );
            assert_eq!(resp.outcome, Outcome::Issued);
        }
        assert_eq!(desk.issued(), 2);
    }
}

// ---- finding 4: approval transferred to another key ----------------------------------------

#[test]
fn finding_4_an_approval_cannot_be_collected_for_another_key() {
    for desk in Desk::all("[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let params = Client::params();
        let request = client.request_with(params.clone());
        let resp = parse(&desk.handle_cmc(&request, client.old_cert.der()).body);
        let Outcome::Pending { token, .. } = resp.outcome else {
            panic!("{:?}", resp.outcome)
        };
        let id = i64::from_be_bytes(token.try_into().unwrap());
        assert!(ca.decide_pending(id, true).unwrap());
        // The poll carries the same transactionId and another key.
        let other = SoftwareKey::generate_p256().unwrap();
        let mut poll = Client::params();
        poll.transaction_id = params.transaction_id;
        let swapped = client.request_for_key(&other, poll);
        desk.assert_rejected(&client, &swapped, CmcFailInfo::BadRequest, "0x80094003");
        // The real poll collects what was approved: the stored key.
        let resp = parse(&desk.handle_cmc(&request, client.old_cert.der()).body);
        assert_eq!(resp.outcome, Outcome::Issued);
        assert_eq!(
            resp.certificates[0]
                .value()
                .tbs_certificate()
                .subject_public_key_info(),
            client.new_key.public_key()
        );
        let trail = desk.audit_trail();
        assert!(
            trail.iter().any(|r| r.outcome == AuditOutcome::Refused
                && r.pending_id == Some(id)
                && r.detail.contains("different PKCS#10")),
            "{trail:#?}"
        );
    }
}

#[test]
fn a_simplereenroll_poll_with_another_pkcs10_for_the_same_key_is_refused() {
    for desk in Desk::all("[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let p10 = build_renewal_pkcs10(&client.old_cert, &client.new_key, None).unwrap();
        let reply = desk.simple(p10.der(), client.old_cert.der());
        assert!(matches!(reply, SimpleReply::Pending(_)), "{reply:?}");
        let id = ca.with_store(|s| s.list_pending()).unwrap()[0].id;
        assert!(ca.decide_pending(id, true).unwrap());
        // Same key, one more attribute.
        let changed = with_pair(&client, &p10, "CertificateTemplate", "SmartcardUser");
        let reply = desk.simple(&changed, client.old_cert.der());
        let SimpleReply::Rejected(r) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(r.codes().hresult, 0x8009_4003, "{r}");
        assert_eq!(desk.issued(), 0);
        let reply = desk.simple(p10.der(), client.old_cert.der());
        simple_serial(&reply);
    }
}

// ---- finding 5 and the ESC6 pattern: name/value pairs in a simplereenroll PKCS#10 ------------

/// `p10` with one more name/value pair attribute, re-signed by the client's new key.
fn with_pair(client: &Client, p10: &Retained<CertReq>, name: &str, value: &str) -> Vec<u8> {
    let mut req = p10.value().clone();
    let pair = Any::encode_from(&NameValuePair::new(name, value).unwrap()).unwrap();
    req.info
        .attributes
        .insert(x509_cert::attr::Attribute {
            oid: oids::MS_ENROLLMENT_NAME_VALUE_PAIR,
            values: SetOfVec::try_from(vec![pair]).unwrap(),
        })
        .unwrap();
    let sig = client.new_key.sign(&req.info.to_der().unwrap()).unwrap();
    req.signature = BitString::from_bytes(&sig).unwrap();
    req.to_der().unwrap()
}

fn simple_refusal(ca: &Ca, client: &Client, body: &[u8]) -> u32 {
    let (reply, _) = ca.handle_simple(body, client.old_cert.der());
    match reply {
        SimpleReply::Rejected(r) => r.codes().hresult,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn finding_5_simplereenroll_checks_a_certificate_template_pair() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let p10 = build_renewal_pkcs10(&client.old_cert, &client.new_key, None).unwrap();
        let asks_other = with_pair(
            &client,
            &p10,
            "CertificateTemplate",
            "SmartcardUserApproval",
        );
        assert_eq!(simple_refusal(ca, &client, &asks_other), 0x8009_4012);
        let asks_unknown = with_pair(&client, &p10, "CertificateTemplate", "DomainController");
        assert_eq!(simple_refusal(ca, &client, &asks_unknown), 0x8009_4800);
        // Naming its own template is fine.
        let own = with_pair(&client, &p10, "CertificateTemplate", "SmartcardUser");
        let reply = desk.simple(&own, client.old_cert.der());
        simple_serial(&reply);
    }
}

#[test]
fn a_san_name_value_pair_is_refused_in_both_protocols() {
    // ADCS with EDITF_ATTRIBUTESUBJECTALTNAME2 takes names from a "SAN" pair (ESC6): a renewal
    // asks for no names at all.
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let p10 = build_renewal_pkcs10(&client.old_cert, &client.new_key, None).unwrap();
        let esc6 = with_pair(&client, &p10, "san", "upn=administrator@example.com");
        assert_eq!(simple_refusal(ca, &client, &esc6), 0x8009_4806);
        let new = client.new_key.public_key().clone();
        let request = forge(&client, new, &client.new_key, |req, _| {
            let pair = Any::encode_from(
                &NameValuePair::new("SAN", "dns=dc01.example.com&upn=administrator@example.com")
                    .unwrap(),
            )
            .unwrap();
            req.info
                .attributes
                .insert(x509_cert::attr::Attribute {
                    oid: oids::MS_ENROLLMENT_NAME_VALUE_PAIR,
                    values: SetOfVec::try_from(vec![pair]).unwrap(),
                })
                .unwrap();
        });
        desk.assert_rejected(&client, &request, CmcFailInfo::BadRequest, "0x80094806");
    }
}

#[test]
fn requested_extensions_do_not_reach_the_certificate() {
    use x509_cert::ext::{
        Extension,
        pkix::{BasicConstraints, ExtendedKeyUsage},
    };
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let new = client.new_key.public_key().clone();
        let request = forge(&client, new, &client.new_key, |req, _| {
            let mut exts = renewal_codec::cmc::verify_request::requested_extensions(req).unwrap();
            exts.extend([
                Extension {
                    extn_id: oids::BASIC_CONSTRAINTS,
                    critical: true,
                    extn_value: OctetString::new(
                        BasicConstraints {
                            ca: true,
                            path_len_constraint: None,
                        }
                        .to_der()
                        .unwrap(),
                    )
                    .unwrap(),
                },
                Extension {
                    extn_id: oids::EXT_KEY_USAGE,
                    critical: false,
                    extn_value: OctetString::new(
                        ExtendedKeyUsage(vec![ObjectIdentifier::new_unwrap("2.5.29.37.0")])
                            .to_der()
                            .unwrap(),
                    )
                    .unwrap(),
                },
            ]);
            let attr = x509_cert::attr::Attribute {
                oid: oids::ID_EXTENSION_REQUEST,
                values: SetOfVec::try_from(vec![Any::encode_from(&exts).unwrap()]).unwrap(),
            };
            let kept: Vec<_> = req
                .info
                .attributes
                .iter()
                .filter(|a| a.oid != oids::ID_EXTENSION_REQUEST)
                .cloned()
                .collect();
            req.info.attributes = SetOfVec::try_from(kept).unwrap();
            req.info.attributes.insert(attr).unwrap();
        });
        // Requested extensions are ignored (the certificate's are the old certificate's): the
        // request is issued, without what it asked for.
        let resp = parse(&desk.handle_cmc(&request, client.old_cert.der()).body);
        assert_eq!(resp.outcome, Outcome::Issued, "{:?}", resp.status_string);
        let issued = resp.certificates[0].value().tbs_certificate();
        let bc = issued
            .get_extension::<BasicConstraints>()
            .unwrap()
            .map(|(_, b)| b.ca);
        assert_ne!(bc, Some(true), "the CA issued a CA certificate");
        let eku = |c: &Certificate| {
            c.tbs_certificate()
                .get_extension::<ExtendedKeyUsage>()
                .unwrap()
                .map(|(_, e)| e.0)
        };
        assert_eq!(
            eku(resp.certificates[0].value()),
            eku(client.old_cert.value())
        );
    }
}

// ---- identity binding, POP, foreign certificates ---------------------------------------------

#[test]
fn someone_elses_renewal_over_my_tls_identity_is_refused() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let alice = Client::new(ca);
        let mallory = Client::new(ca);
        let before = desk.issued();
        let reply = desk.handle_cmc(&alice.request(), mallory.old_cert.der());
        let resp = parse(&reply.body);
        assert_eq!(
            resp.outcome,
            Outcome::Failed {
                fail_info: Some(CmcFailInfo::BadIdentity)
            }
        );
        assert_eq!(desk.issued(), before);
    }
}

#[test]
fn a_pkcs10_signed_by_another_key_fails_proof_of_possession() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let thief = SoftwareKey::generate_p256().unwrap();
        // The PKCS#10 names the client's new key but the thief signs it (and the CMS layer).
        let request = forge(
            &client,
            client.new_key.public_key().clone(),
            &thief,
            |_, _| {},
        );
        desk.assert_rejected(&client, &request, CmcFailInfo::PopFailed, "0x80090006");
    }
}

#[test]
fn deeply_nested_and_oversized_bodies_are_refused_without_work() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        // 10,000 nested SEQUENCE headers with indefinite-looking lengths.
        let mut nested = Vec::new();
        for _ in 0..10_000 {
            nested.extend_from_slice(&[0x30, 0x80]);
        }
        let (fail, _) = desk.rejected(&client, &nested);
        assert_eq!(fail, Some(CmcFailInfo::BadRequest));
        let huge = vec![0x30; 300 * 1024];
        let (fail, text) = desk.rejected(&client, &huge);
        assert_eq!(fail, Some(CmcFailInfo::BadRequest), "{text}");
        assert!(text.starts_with("0x80094007"), "{text}");
    }
}

// ---- the audit trail ----------------------------------------------------------------------

#[test]
fn every_decision_is_audited_and_the_trail_is_append_only() {
    let dir = std::env::temp_dir().join(format!("sim-ca-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("ca.db");
    let clock = sim_ca::clock::Clock::fixed(common::now());
    let ca = Ca::new(
        sim_ca::authority::Authority::generate(clock.now()).unwrap(),
        Store::open(&db).unwrap(),
        &sim_ca::scenario::Scenario::from_toml(
            "[[rule]]\nrequest = 2\ndisposition = \"pending\"\nresolve = \"admin\"\n",
        )
        .unwrap(),
        clock,
    )
    .unwrap();
    let client = Client::new(&ca);
    let request = client.request();
    ca.handle_cmc(&request, client.old_cert.der()); // issued
    ca.handle_cmc(&request, client.old_cert.der()); // replay answered
    let mut bad = client.request_for_another_key();
    let n = bad.len();
    bad[n - 3] ^= 1; // refused: old-key signature broken
    ca.handle_cmc(&bad, client.old_cert.der());
    let pend = client.request_for_another_key();
    ca.handle_cmc(&pend, client.old_cert.der()); // pending (the subject's request 2)
    let id = ca.with_store(|s| s.list_pending()).unwrap()[0].id;
    ca.decide_pending(id, true).unwrap(); // approved
    ca.handle_cmc(&pend, client.old_cert.der()); // issued from pending
    let serial = {
        let trail = ca.audit_trail();
        trail[0].serial.clone().unwrap()
    };
    ca.revoke(&serial).unwrap();
    let trail: Vec<AuditRecord> = ca.audit_trail();
    let outcomes: Vec<&str> = trail.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "issued",
            "replay-answered",
            "refused",
            "pending",
            "approved",
            "issued",
            "revoked"
        ],
        "{trail:#?}"
    );
    let fingerprint = renewal_codec::cmc::verify_request::hex(
        &renewal_codec::cmc::DigestAlgorithm::Sha256.digest(client.old_cert.der()),
    );
    assert_eq!(trail[0].tls_fingerprint, fingerprint);
    assert_eq!(
        trail[0].request_hash,
        renewal_codec::cmc::verify_request::hex(
            &renewal_codec::cmc::DigestAlgorithm::Sha256.digest(&request)
        )
    );
    assert_eq!(trail[0].template.as_deref(), Some("SmartcardUser"));
    assert_eq!(trail[1].serial, trail[0].serial);
    assert!(
        trail[2].detail.contains("BadMessageCheck"),
        "{}",
        trail[2].detail
    );
    assert_eq!(trail[5].pending_id, Some(id));
    // Every issued certificate has its record and every record's serial its certificate.
    let issued: Vec<String> = ca
        .with_store(|s| s.certificates())
        .unwrap()
        .into_iter()
        .map(|(serial, _, _)| serial)
        .collect();
    let audited: Vec<String> = trail
        .iter()
        .filter(|r| r.outcome == AuditOutcome::Issued)
        .filter_map(|r| r.serial.clone())
        .collect();
    let mut a = issued.clone();
    a.sort();
    let mut b = audited;
    b.sort();
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
    drop(ca);
    // Append-only, even for someone with the database file.
    let raw = rusqlite::Connection::open(&db).unwrap();
    assert!(
        raw.execute("UPDATE audit SET outcome = 'issued'", [])
            .is_err()
    );
    assert!(raw.execute("DELETE FROM audit", []).is_err());
    let count: i64 = raw
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 7);
    drop(raw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn renewing_back_onto_an_older_certified_key_is_key_reuse() {
    // Alice renews A -> B -> C, then asks to go back to B's key.
    for desk in Desk::all("") {
        let ca = desk.ca();
        let first = Client::new(ca);
        let resp = parse(&desk.handle_cmc(&first.request(), first.old_cert.der()).body);
        assert_eq!(resp.outcome, Outcome::Issued);
        let renewed = resp.certificates[0].clone();
        let second = Client {
            old_key: first.new_key,
            old_cert: renewed,
            new_key: SoftwareKey::generate_p256().unwrap(),
        };
        // B -> C, then from C back to B's key (certified by this CA, still held by Alice).
        let third_key = SoftwareKey::generate_p256().unwrap();
        let resp = parse(
            &desk
                .handle_cmc(
                    &second.request_for_key(&third_key, Client::params()),
                    second.old_cert.der(),
                )
                .body,
        );
        assert_eq!(resp.outcome, Outcome::Issued);
        let third = Client {
            old_key: third_key,
            old_cert: resp.certificates[0].clone(),
            new_key: SoftwareKey::generate_p256().unwrap(),
        };
        // From the third certificate, back to the second certificate's key.
        let request = third.request_for_key(&second.old_key, Client::params());
        desk.assert_rejected(&third, &request, CmcFailInfo::NoKeyReuse, "0x80070057");
        let p10 = build_renewal_pkcs10(&third.old_cert, &second.old_key, None).unwrap();
        let reply = desk.simple(p10.der(), third.old_cert.der());
        let SimpleReply::Rejected(r) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(r.codes().hresult, 0x8007_0057);
    }
}

/// A simplereenroll PKCS#10 for the client's old certificate carrying `spki`, signed by
/// `pop_key`.
fn simple_with_key(
    client: &Client,
    spki: SubjectPublicKeyInfoOwned,
    pop_key: &dyn Signer,
) -> Vec<u8> {
    let p10 = build_renewal_pkcs10(&client.old_cert, &client.new_key, None).unwrap();
    let mut req = p10.value().clone();
    req.info.public_key = spki;
    req.algorithm = pop_key.algorithm().x509_identifier().unwrap();
    let sig = pop_key.sign(&req.info.to_der().unwrap()).unwrap();
    req.signature = BitString::from_bytes(&sig).unwrap();
    req.to_der().unwrap()
}

#[test]
fn the_key_attacks_are_refused_at_simplereenroll_too() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let old = old_spki(&client);
        // The old key, compressed: key reuse.
        let compressed = spki_with(&old, &compress(old.subject_public_key.raw_bytes()));
        let body = simple_with_key(&client, compressed, &client.old_key);
        assert_eq!(simple_refusal(ca, &client, &body), 0x8007_0057);
        // The old SPKI wrapped in the BIT STRING: not a key.
        let wrapped = spki_with(&old, &old.to_der().unwrap());
        let body = simple_with_key(&client, wrapped, &client.old_key);
        assert_eq!(simple_refusal(ca, &client, &body), 0x8009_0015);
        // RSA-1024 padded to look like 2048 bits, and plain RSA-1024.
        let weak = OpensslRsa::load("rsa1024.key");
        let mut padded = weak.spki.subject_public_key.raw_bytes().to_vec();
        padded.resize(270, 0);
        let body = simple_with_key(&client, spki_with(&weak.spki, &padded), &weak);
        assert_eq!(simple_refusal(ca, &client, &body), 0x8009_0015);
        let body = simple_with_key(&client, weak.spki.clone(), &weak);
        assert_eq!(simple_refusal(ca, &client, &body), 0x8009_4811);
        // An unsupported curve.
        let p521 = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: oids::EC_PUBLIC_KEY,
                parameters: Some(
                    Any::encode_from(&ObjectIdentifier::new_unwrap("1.3.132.0.35")).unwrap(),
                ),
            },
            subject_public_key: BitString::from_bytes(&[4; 133]).unwrap(),
        };
        let body = simple_with_key(&client, p521, &client.new_key);
        assert_eq!(simple_refusal(ca, &client, &body), 0x8009_0008);
        assert_eq!(desk.issued(), 0);
    }
}
