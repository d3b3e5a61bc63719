//! Every rejection path of the renewal-only policy, in-process, with its exact CMC fail info
//! and ADCS HRESULT; and the happy path, checked field by field.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use sim_ca::store::Endpoint;
use std::time::Duration;

use common::{Client, desk::Desk, mutated, mutated_signed_by, parse, sign};
use der::{
    Decode,
    asn1::{OctetString, SetOfVec},
};
use renewal_codec::cmc::{
    Outcome, Signer, SoftwareKey, microsoft::TemplateRef, oids, pki::PkiData,
    signed_data::SignedData, status::CmcFailInfo, verify_request::RequestContent,
};
use sim_ca::store::AuditOutcome;

#[test]
fn a_proper_renewal_is_issued_with_the_old_identity_and_the_new_key() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let reply = desk.handle_cmc(&client.request(), client.old_cert.der());
        let resp = parse(&reply.body);
        assert_eq!(resp.outcome, Outcome::Issued);
        assert_eq!(
            resp.verify_signer().unwrap().der(),
            desk.signer(),
            "{}",
            desk.name()
        );
        let new = &resp.certificates[0];
        let (old_tbs, new_tbs) = (
            client.old_cert.value().tbs_certificate(),
            new.value().tbs_certificate(),
        );
        assert_eq!(new_tbs.subject(), old_tbs.subject());
        assert_eq!(
            new_tbs.subject_public_key_info(),
            client.new_key.public_key()
        );
        assert_ne!(new_tbs.serial_number(), old_tbs.serial_number());
        assert!(ca.authority().issued_by_us(new));
        let ext = |tbs: &x509_cert::TbsCertificate, oid| {
            tbs.extensions()
                .unwrap()
                .iter()
                .find(|e| e.extn_id == oid)
                .map(|e| e.extn_value.clone())
        };
        for oid in [
            oids::SUBJECT_ALT_NAME,
            oids::MS_CERTIFICATE_TEMPLATE,
            oids::EXT_KEY_USAGE,
            oids::KEY_USAGE,
        ] {
            assert_eq!(ext(new_tbs, oid), ext(old_tbs, oid), "{oid}");
        }
        assert_ne!(
            ext(new_tbs, oids::SUBJECT_KEY_IDENTIFIER),
            ext(old_tbs, oids::SUBJECT_KEY_IDENTIFIER)
        );
        assert!(ca.counters().contains(&("issued".into(), 1)));
    }
}

#[test]
fn tls_identity_must_be_the_certificate_being_renewed() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let other = Client::new(ca);
        let reply = desk.handle_cmc(&client.request(), other.old_cert.der());
        let resp = parse(&reply.body);
        assert_eq!(
            resp.outcome,
            Outcome::Failed {
                fail_info: Some(CmcFailInfo::BadIdentity)
            }
        );
        assert!(resp.status_string.unwrap().starts_with("0x80070005"));
    }
}

#[test]
fn certificates_of_another_ca_are_refused() {
    for desk in Desk::all("") {
        let foreign = renewal_codec::sample::Sample::deterministic().unwrap();
        let client = Client {
            old_key: foreign.old_key,
            old_cert: foreign.old_cert,
            new_key: foreign.new_key,
        };
        desk.assert_rejected(
            &client,
            &client.request(),
            CmcFailInfo::BadIdentity,
            "0x800B0109",
        );
    }
}

#[test]
fn expired_certificates_are_refused_unless_within_grace() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        ca.clock().advance(Duration::from_secs(366 * 86400));
        desk.assert_rejected(
            &client,
            &client.request(),
            CmcFailInfo::BadTime,
            "0x800B0101",
        );
    }
    for lenient in Desk::all("grace_days = 30") {
        let client = Client::new(lenient.ca());
        lenient
            .ca()
            .clock()
            .advance(Duration::from_secs(366 * 86400));
        let (outcome, text, _) =
            lenient.cmc(Endpoint::FullCmc, &client.request(), client.old_cert.der());
        assert_eq!(outcome, Outcome::Issued, "{}: {text}", lenient.name());
    }
}

/// A CA whose issuing certificate expires `days_left` days after the tests' fixed now.
fn ca_expiring_in(days_left: u64) -> sim_ca::Ca {
    use sim_ca::{authority::Authority, clock::Clock, scenario::Scenario, store::Store};
    // `Authority::generate` makes the issuing certificate valid for 20 years from an hour
    // before the time it is given.
    let born = common::now() - Duration::from_secs((20 * 365 - days_left) * 86400 - 3600);
    sim_ca::Ca::new(
        Authority::generate(born).unwrap(),
        Store::in_memory().unwrap(),
        &Scenario::from_toml("").unwrap(),
        Clock::fixed(common::now()),
    )
    .unwrap()
}

#[test]
fn an_issued_certificate_ends_when_the_issuing_ca_does_and_an_expired_ca_issues_nothing() {
    let ca = ca_expiring_in(30);
    let ca_not_after = ca
        .authority()
        .issuing
        .cert
        .value()
        .tbs_certificate()
        .validity()
        .not_after;
    let client = Client::new(&ca);
    let reply = ca.handle_cmc(&client.request(), client.old_cert.der());
    let resp = parse(&reply.body);
    assert_eq!(resp.outcome, Outcome::Issued);
    // The template asks for a year; the issuing CA has 30 days left (as ADCS cuts it).
    let new = resp.certificates[0].value().tbs_certificate().validity();
    assert_eq!(new.not_after, ca_not_after);
    assert!(new.not_before.to_unix_duration() < new.not_after.to_unix_duration());

    // Past the issuing CA's expiry the user's certificate is still valid, but the CA issues
    // nothing: no certificate, no serial, an internal error the client rolls back on.
    let ca = ca_expiring_in(30);
    let client = Client::new(&ca);
    ca.clock().advance(Duration::from_secs(31 * 86400));
    let (fail, text) = common::rejected(&ca, &client, &client.request());
    assert_eq!(fail, Some(CmcFailInfo::InternalCaError), "{text}");
    assert!(
        text.contains("issuing CA's certificate is not valid now"),
        "{text}"
    );
    assert!(
        !ca.counters()
            .iter()
            .any(|(name, n)| name == "issued" && *n > 0)
    );
}

#[test]
fn revoked_certificates_are_refused() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let serial = renewal_codec::cmc::verify_request::hex(
            client
                .old_cert
                .value()
                .tbs_certificate()
                .serial_number()
                .as_bytes(),
        );
        ca.revoke(&serial).unwrap();
        desk.assert_rejected(
            &client,
            &client.request(),
            CmcFailInfo::BadCertId,
            "0x80092010",
        );
    }
}

/// `client`'s request with its subjectAltName extension replaced by one of `names` (`None`:
/// without one).
fn with_alt_names(
    client: &Client,
    names: Option<Vec<x509_cert::ext::pkix::name::GeneralName>>,
) -> Vec<u8> {
    mutated(client, &client.new_key, |req| {
        let attrs: Vec<_> = req
            .info
            .attributes
            .iter()
            .cloned()
            .map(|mut a| {
                if a.oid == oids::ID_EXTENSION_REQUEST {
                    let mut exts: Vec<x509_cert::ext::Extension> =
                        a.values.iter().next().unwrap().decode_as().unwrap();
                    exts.retain(|e| e.extn_id != oids::SUBJECT_ALT_NAME);
                    if let Some(names) = &names {
                        exts.push(renewal_codec::x509::subject_alt_name(names.clone()).unwrap());
                    }
                    a.values =
                        SetOfVec::try_from(vec![der::asn1::Any::encode_from(&exts).unwrap()])
                            .unwrap();
                }
                a
            })
            .collect();
        req.info.attributes = SetOfVec::try_from(attrs).unwrap();
    })
}

/// The mailbox in `client`'s certificate, split at its `@`.
fn mailbox(client: &Client) -> (String, String) {
    use x509_cert::ext::pkix::{SubjectAltName, name::GeneralName};
    let extension = client
        .old_cert
        .value()
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == oids::SUBJECT_ALT_NAME)
        .unwrap();
    let names = SubjectAltName::from_der(extension.extn_value.as_bytes()).unwrap();
    let [GeneralName::Rfc822Name(mail)] = names.0.as_slice() else {
        panic!("{names:?}")
    };
    let (local, domain) = mail.as_str().rsplit_once('@').unwrap();
    (local.to_string(), domain.to_string())
}

/// Under `strict` (and for EST re-enrollment), the SAN a request spells is held against the
/// renewed certificate's by RFC 5280's rules: the mailbox's domain in capitals is the same
/// mailbox (issued, with the renewed certificate's spelling); its local part in another case is
/// another mailbox (refused).
#[test]
fn alt_names_compare_by_rfc_5280_under_strict() {
    use x509_cert::ext::pkix::name::GeneralName;
    let spelled = |client: &Client, mail: String| {
        with_alt_names(
            client,
            Some(vec![GeneralName::Rfc822Name(
                der::asn1::Ia5String::new(&mail).unwrap(),
            )]),
        )
    };
    for strict in Desk::all("profile = \"strict\"\n") {
        let client = Client::new(strict.ca());
        let (local, domain) = mailbox(&client);
        let request = spelled(&client, format!("{local}@{}", domain.to_uppercase()));
        let (outcome, text, certificates) =
            strict.cmc(Endpoint::FullCmc, &request, client.old_cert.der());
        assert_eq!(outcome, Outcome::Issued, "{}: {text}", strict.name());
        let issued = certificates
            .iter()
            .find(|c| {
                c.value().tbs_certificate().subject_public_key_info() == client.new_key.public_key()
            })
            .unwrap();
        renewal_codec::x509::same_renewal_profile(issued.value(), client.old_cert.value())
            .unwrap_or_else(|e| panic!("{}: the certificate has another {e}", strict.name()));
        let client = Client::new(strict.ca());
        let (local, domain) = mailbox(&client);
        let other_local = if local.to_uppercase() == local {
            local.to_lowercase()
        } else {
            local.to_uppercase()
        };
        strict.assert_rejected(
            &client,
            &spelled(&client, format!("{other_local}@{domain}")),
            CmcFailInfo::BadRequest,
            "0x80094806",
        );
    }
}

/// A request that spells another subject, or no SAN: no elevation either way. Under the
/// `adcs` profile (ADCS builds a renewal's names from the renewed certificate) it is issued with
/// the renewed certificate's subject and SAN, and the difference is a finding in the audit
/// record; under `strict`, refused (RFC 5280 §7.1 comparison).
#[test]
fn no_elevation_of_subject_or_names() {
    let elevated = |client: &Client| {
        mutated(client, &client.new_key, |req| {
            req.info.subject = std::str::FromStr::from_str("CN=Administrator,O=cardrenew").unwrap();
        })
    };
    let no_san = |client: &Client| with_alt_names(client, None);
    for (what, build) in [
        ("another subject", &elevated as &dyn Fn(&Client) -> Vec<u8>),
        ("no SAN", &no_san),
    ] {
        for strict in Desk::all("profile = \"strict\"\n") {
            let client = Client::new(strict.ca());
            strict.assert_rejected(
                &client,
                &build(&client),
                CmcFailInfo::BadRequest,
                "0x80094806",
            );
        }
        for adcs in Desk::all("") {
            let client = Client::new(adcs.ca());
            let (outcome, text, certificates) =
                adcs.cmc(Endpoint::FullCmc, &build(&client), client.old_cert.der());
            assert_eq!(outcome, Outcome::Issued, "{} {what}: {text}", adcs.name());
            let issued = certificates
                .iter()
                .find(|c| {
                    c.value().tbs_certificate().subject_public_key_info()
                        == client.new_key.public_key()
                })
                .unwrap();
            renewal_codec::x509::same_renewal_profile(issued.value(), client.old_cert.value())
                .unwrap_or_else(|e| panic!("{what}: the certificate has another {e}"));
            let record = adcs
                .audit_trail()
                .into_iter()
                .find(|r| r.outcome == AuditOutcome::Issued)
                .unwrap();
            assert!(
                record.detail.contains("finding:"),
                "{} {what}: {record:?}",
                adcs.name()
            );
        }
    }
}

#[test]
fn the_template_cannot_change() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let mut params = Client::params();
        params.template = Some(TemplateRef::from_user_text("SmartcardUserApproval"));
        desk.assert_rejected(
            &client,
            &client.request_with(params),
            CmcFailInfo::BadRequest,
            "0x80094012",
        );
        let mut params = Client::params();
        params.template = Some(TemplateRef::from_user_text("WebServer"));
        desk.assert_rejected(
            &client,
            &client.request_with(params),
            CmcFailInfo::BadRequest,
            "0x80094800",
        );
    }
}

#[test]
fn the_new_key_must_be_new_and_allowed() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        // The PKCS#10 asks for the old key, signed by it; the CMS signers are the old key twice.
        let old_spki = client.old_key.public_key().clone();
        let reuse = Client {
            old_key: SoftwareKey::from_pem_or_der(
                client.old_key.to_pkcs8_pem().unwrap().as_bytes(),
            )
            .unwrap(),
            old_cert: client.old_cert.clone(),
            new_key: SoftwareKey::from_pem_or_der(
                client.old_key.to_pkcs8_pem().unwrap().as_bytes(),
            )
            .unwrap(),
        };
        let request = mutated_signed_by(&client, &reuse, &client.old_key, |req| {
            req.info.public_key = old_spki
        });
        desk.assert_rejected(&client, &request, CmcFailInfo::NoKeyReuse, "0x80070057");
    }
    let rsa_only = format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nallowed_keys = [\"rsa2048\"]\n",
        renewal_codec::sample::SAMPLE_TEMPLATE_OID
    );
    for desk in Desk::all(&rsa_only) {
        let client = Client::new(desk.ca());
        desk.assert_rejected(
            &client,
            &client.request(),
            CmcFailInfo::BadAlg,
            "0x80090008",
        );
    }
}

#[test]
fn proof_of_possession_and_signatures() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let request = mutated(&client, &client.old_key, |_| {});
        desk.assert_rejected(&client, &request, CmcFailInfo::PopFailed, "0x80090006");
        let mut sd = renewal_codec::cmc::parse_request(&client.request(), &Default::default())
            .unwrap()
            .signed_data;
        let mut sig = sd.signer_infos.0[1].signature.as_bytes().to_vec();
        sig[10] ^= 1;
        sd.signer_infos.0[1].signature = OctetString::new(sig).unwrap();
        desk.assert_rejected(
            &client,
            &sd.to_content_info_der().unwrap(),
            CmcFailInfo::BadMessageCheck,
            "0x80090006",
        );
    }
}

#[test]
fn exactly_one_pkcs10_and_a_proper_renewal_attribute() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let parsed =
            renewal_codec::cmc::parse_request(&client.request(), &Default::default()).unwrap();
        let RequestContent::Cmc(mut pki) = parsed.content else {
            panic!()
        };
        pki.req_sequence.push(pki.req_sequence[0].clone());
        desk.assert_rejected(
            &client,
            &sign(&client, &pki),
            CmcFailInfo::BadRequest,
            "0x8007000D",
        );

        let request = mutated(&client, &client.new_key, |req| {
            let kept: Vec<_> = req
                .info
                .attributes
                .iter()
                .filter(|a| a.oid != oids::MS_RENEWAL_CERTIFICATE)
                .cloned()
                .collect();
            req.info.attributes = SetOfVec::try_from(kept).unwrap();
        });
        desk.assert_rejected(&client, &request, CmcFailInfo::BadCertId, "0x8009400E");

        // Signed by the new key only (Microsoft's published sample shape): the old key never
        // signed, so the TLS identity is not bound to the request.
        let mut sd: SignedData =
            renewal_codec::cmc::parse_request(&client.request(), &Default::default())
                .unwrap()
                .signed_data;
        sd.signer_infos.0.truncate(1);
        desk.assert_rejected(
            &client,
            &sd.to_content_info_der().unwrap(),
            CmcFailInfo::BadCertId,
            "0x8009400E",
        );
    }
}

#[test]
fn a_resent_request_gets_the_same_certificate_and_reused_ids_are_refused() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let first = Client::params();
        let request = client.request_with(first.clone());
        let serial_of = |body: &[u8]| {
            let resp = parse(body);
            assert_eq!(resp.outcome, Outcome::Issued, "{:?}", resp.status_string);
            resp.certificates[0]
                .value()
                .tbs_certificate()
                .serial_number()
                .clone()
        };
        let issued = serial_of(&desk.handle_cmc(&request, client.old_cert.der()).body);
        // The answer was lost: the same request again, and the same request with fresh ids,
        // get the certificate already issued.
        assert_eq!(
            serial_of(&desk.handle_cmc(&request, client.old_cert.der()).body),
            issued
        );
        assert_eq!(
            serial_of(
                &desk
                    .handle_cmc(&client.request(), client.old_cert.der())
                    .body
            ),
            issued
        );
        let counters = ca.counters();
        assert_eq!(
            counters
                .iter()
                .find(|(n, _)| n == "issued")
                .map(|(_, v)| *v),
            Some(1)
        );
        // Another key under a transactionId or senderNonce already used is a replay.
        let other = SoftwareKey::generate_p256().unwrap();
        let mut same_transaction = Client::params();
        same_transaction.transaction_id = first.transaction_id;
        desk.assert_rejected(
            &client,
            &client.request_for_key(&other, same_transaction),
            CmcFailInfo::BadRequest,
            "0x80094003",
        );
        let mut same_nonce = Client::params();
        same_nonce.sender_nonce = first.sender_nonce.clone();
        desk.assert_rejected(
            &client,
            &client.request_for_key(&other, same_nonce),
            CmcFailInfo::BadRequest,
            "0x80094003",
        );
    }
}

#[test]
fn malformed_and_oversized_input() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let client = Client::new(ca);
        let mut request = client.request();
        request.truncate(request.len() - 5);
        desk.assert_rejected(&client, &request, CmcFailInfo::BadRequest, "0x8007000D");
        desk.assert_rejected(
            &client,
            &vec![0x30; 300 * 1024],
            CmcFailInfo::BadRequest,
            "0x80094007",
        );
        let _ = PkiData::from_der(&[]);
    }
}

/// The endpoint a request came in at is a value; a caller holding its name may pass that, read
/// at the boundary: a name no endpoint has is refused, nothing decided or recorded for it.
#[test]
fn an_endpoint_is_named_by_value_or_by_its_stored_name() {
    let ca = common::ca();
    let client = Client::new(&ca);
    let reply = ca.handle_cmc_at("cmc", &client.request(), client.old_cert.der());
    assert_eq!(parse(&reply.body).outcome, Outcome::Issued);
    assert_eq!(ca.audit_trail().last().unwrap().endpoint, Endpoint::Cmc);
    let records = ca.audit_trail().len();
    let other = Client::new(&ca);
    let reply = ca.handle_cmc_at("est", &other.request(), other.old_cert.der());
    let parsed = parse(&reply.body);
    assert!(
        matches!(parsed.outcome, Outcome::Failed { .. })
            && parsed
                .status_string
                .as_deref()
                .is_some_and(|s| s.contains("unknown endpoint")),
        "{:?} {:?}",
        parsed.outcome,
        parsed.status_string
    );
    assert_eq!(ca.audit_trail().len(), records, "nothing recorded");

    // The gateway's door reads a name the same way.
    let upstream = common::Upstream::start("");
    let gateway = upstream.gateway_local(sim_ca::store::Store::in_memory().unwrap());
    let user = upstream.user();
    let reply = gateway.handle_cmc_at("cmc", &user.request(), user.old_cert.der());
    assert_eq!(parse(&reply.body).outcome, Outcome::Issued);
    assert_eq!(gateway.audit_trail().last().unwrap().endpoint, "cmc");
    let records = gateway.audit_trail().len();
    let other = upstream.user();
    let reply = gateway.handle_cmc_at("est", &other.request(), other.old_cert.der());
    let parsed = parse(&reply.body);
    assert!(
        matches!(parsed.outcome, Outcome::Failed { .. }),
        "{:?}",
        parsed.outcome
    );
    assert_eq!(gateway.audit_trail().len(), records, "nothing recorded");
}
