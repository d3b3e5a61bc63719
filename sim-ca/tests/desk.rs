//! One decision, whoever decides: each finding of the gateway review, tried against the
//! simulated CA directly, through the gateway over the network (HTTPS to an upstream sim-ca),
//! and through the gateway in front of the simulated authority in process — and on every
//! endpoint. A renewal renews exactly the certificate that authenticated: never a namesake's,
//! never a revoked card's other certificate; one transaction is decided once, whatever arrives
//! at the same instant; the gateway delivers nothing but a renewal.

#![allow(clippy::unwrap_used)]

mod common;

use sim_ca::store::Endpoint;
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use common::{Client, IssuesWhatever, Upstream, desk::Desk, parse};
use der::{Encode, Tagged, asn1::BitString};
use renewal_codec::cmc::{Outcome, Signer, SoftwareKey, build_renewal_request, oids};
use sim_ca::{
    Ca,
    service::SimpleReply,
    store::{AuditOutcome, Store},
};
use x509_cert::{
    ext::{Extension, pkix::KeyUsages},
    name::Name,
    request::CertReq,
};

/// A user certificate from `ca` for `name` (mailbox SAN `mailbox`), recorded as issued.
fn named_user(ca: &Ca, name: &str, mailbox: &str) -> Client {
    let old_key = SoftwareKey::generate_p256().unwrap();
    let old_cert = renewal_codec::sample::issue_named_user_certificate(
        &ca.authority().issuing.key,
        &ca.authority().issuing.cert,
        old_key.public_key(),
        common::now(),
        name,
        mailbox,
    )
    .unwrap();
    ca.register_issued(&old_cert).unwrap();
    Client {
        old_key,
        old_cert,
        new_key: SoftwareKey::generate_p256().unwrap(),
    }
}

/// A bare PKCS#10 (no attributes: no template pair, no extensions) for `subject` and `key`.
fn bare_pkcs10(subject: &x509_cert::name::Name, key: &SoftwareKey) -> Vec<u8> {
    let info = x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: subject.clone(),
        public_key: key.public_key().clone(),
        attributes: Default::default(),
    };
    let signature = key.sign(&info.to_der().unwrap()).unwrap();
    CertReq {
        info,
        algorithm: key.algorithm().x509_identifier().unwrap(),
        signature: BitString::from_bytes(&signature).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// The text a refused simplereenroll carries (its HRESULT and reason).
fn refusal(reply: &SimpleReply) -> String {
    match reply {
        SimpleReply::Rejected(r) => r.status_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Finding: a revoked card renewed. The user holds an older, valid certificate and a newer,
/// revoked one (the card was lost); the holder of the revoked card asks on every endpoint.
/// Through the gateway, a simplereenroll used to renew the *other* certificate (the CA looked
/// the subject up). Every decider refuses on every endpoint, and nothing is issued.
#[test]
fn a_revoked_card_renews_on_no_endpoint_through_no_decider() {
    for desk in Desk::all("") {
        let ca = desk.ca();
        let _older = named_user(ca, "Carol Lost", "carol");
        ca.clock().advance(Duration::from_secs(60));
        let revoked = named_user(ca, "Carol Lost", "carol");
        assert!(
            ca.revoke(&sim_ca::policy::serial_text(revoked.old_cert.value()))
                .unwrap()
        );
        let before = desk.issued();
        for endpoint in [Endpoint::FullCmc, Endpoint::Cmc, Endpoint::Wstep] {
            let (outcome, text, _) = desk.cmc(endpoint, &revoked.request(), revoked.old_cert.der());
            assert!(
                matches!(outcome, Outcome::Failed { .. }) && text.contains("0x80092010"),
                "{} {endpoint}: {outcome:?} {text}",
                desk.name()
            );
        }
        let built = build_renewal_request(
            &revoked.old_cert,
            &revoked.old_key,
            &SoftwareKey::generate_p256().unwrap(),
            &Client::params(),
        )
        .unwrap();
        let subject = &revoked.old_cert.value().tbs_certificate().subject().clone();
        for body in [
            built.pkcs10_der.clone(),
            bare_pkcs10(subject, &SoftwareKey::generate_p256().unwrap()),
        ] {
            let reply = desk.simple(&body, revoked.old_cert.der());
            let text = match &reply {
                // The bare request has no SAN: refused for that before revocation matters.
                SimpleReply::Rejected(r) => r.status_string(),
                other => panic!("{}: a revoked card got {other:?}", desk.name()),
            };
            assert!(
                text.contains("0x80092010") || text.contains("0x80094806"),
                "{}: {text}",
                desk.name()
            );
        }
        let reply = desk.simple(&built.pkcs10_der, revoked.old_cert.der());
        let text = refusal(&reply);
        assert!(text.contains("0x80092010"), "{}: {text}", desk.name());
        assert_eq!(
            desk.issued(),
            before,
            "{}: a certificate was issued",
            desk.name()
        );
    }
}

/// The template of "SmartcardUser" makes renewals pend; "Other" issues at once.
fn two_templates() -> String {
    format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nrenewals_pend = true\n\
         [[template]]\noid = \"1.3.6.1.4.1.311.21.8.99.1\"\nname = \"Other\"\n",
        renewal_codec::sample::SAMPLE_TEMPLATE_OID
    )
}

/// An initial enrollment of `subject` (no SAN) under `template`: its key and certificate.
fn enrolled(ca: &Ca, subject: &str, template: &str) -> Client {
    let old_key = SoftwareKey::generate_p256().unwrap();
    let csr = bare_pkcs10(&subject.parse().unwrap(), &old_key);
    let old_cert = ca.issue_initial(&csr, template, None).unwrap();
    Client {
        old_key,
        old_cert,
        new_key: SoftwareKey::generate_p256().unwrap(),
    }
}

/// Finding: a namesake's certificate renewed. A user whose template makes renewals pend shares
/// a DN (no SAN) with a newer certificate on another template. Through the gateway, a
/// simplereenroll without a template pair was issued at once on the namesake's template. Every
/// decider now takes it under submission, on the user's own template.
#[test]
fn a_namesakes_certificate_is_never_renewed() {
    for desk in Desk::all(&two_templates()) {
        let ca = desk.ca();
        let user = enrolled(ca, "CN=Shared Name,O=Example", "SmartcardUser");
        ca.clock().advance(Duration::from_secs(60));
        let namesake = enrolled(ca, "CN=Shared Name,O=Example", "Other");
        assert_eq!(
            user.old_cert.value().tbs_certificate().subject(),
            namesake.old_cert.value().tbs_certificate().subject()
        );
        let before = desk.issued();
        let subject = user.old_cert.value().tbs_certificate().subject().clone();
        let bare = bare_pkcs10(&subject, &user.new_key);
        let reply = desk.simple(&bare, user.old_cert.der());
        assert!(
            matches!(reply, SimpleReply::Pending(_)),
            "{}: {reply:?}",
            desk.name()
        );
        // With the template pair named, the user is not refused: the pair is the user's own.
        let reply = desk.simple(&user.reenrollment_for_another_key(), user.old_cert.der());
        assert!(
            matches!(reply, SimpleReply::Pending(_)),
            "{}: {reply:?}",
            desk.name()
        );
        assert_eq!(desk.issued(), before, "{}: issued at once", desk.name());
        // The namesake, on its own template, renews at once — its own certificate.
        let built = build_renewal_request(
            &namesake.old_cert,
            &namesake.old_key,
            &namesake.new_key,
            &Client::params(),
        )
        .unwrap();
        let SimpleReply::Issued(der) = desk.simple(&built.pkcs10_der, namesake.old_cert.der())
        else {
            panic!("{}: the namesake did not renew", desk.name())
        };
        let issued = &parse(&der).certificates[0];
        assert_eq!(
            renewal_codec::cmc::request::certificate_template(issued.value()),
            renewal_codec::cmc::request::certificate_template(namesake.old_cert.value()),
        );
    }
}

/// A pending request behind an RA is the user's: one user's transactionId never blocks or
/// collects another's (the CA keyed them by the RA's TLS certificate).
#[test]
fn two_users_behind_one_gateway_may_choose_the_same_transaction_id() {
    for desk in Desk::all("") {
        let (alice, bob) = (desk.upstream.user(), desk.upstream.user());
        let mut params = Client::params();
        let alices = alice.request_with(params.clone());
        params.sender_nonce = Client::params().sender_nonce;
        let bobs = bob.request_with(params);
        for (user, request) in [(&alice, &alices), (&bob, &bobs)] {
            let (outcome, text, _) = desk.cmc(Endpoint::FullCmc, request, user.old_cert.der());
            assert_eq!(outcome, Outcome::Issued, "{}: {text}", desk.name());
        }
        assert_eq!(desk.issued(), 2, "{}", desk.name());
    }
}

/// Finding: the same transaction decided twice. The same transactionId — the same bytes, or
/// two new keys — sent at the same instant to one gateway instance twice, and to two instances
/// on one state database, against an upstream that issues whatever it gets: one certificate
/// per transaction, every round. (Before: both were forwarded in most rounds.)
#[test]
fn one_transaction_reaches_the_upstream_once_whatever_arrives_at_once() {
    let dir = std::env::temp_dir().join(format!(
        "sim-ca-desk-race-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("gateway.db");
    let upstream = Upstream::start("");
    let forwards = Arc::new(AtomicUsize::new(0));
    let backend = || {
        Box::new(IssuesWhatever::new(
            &upstream,
            Arc::clone(&forwards),
            Duration::from_millis(80),
        ))
    };
    let one = upstream.gateway_over(Store::open(&state).unwrap(), backend());
    let two = upstream.gateway_over(Store::open(&state).unwrap(), backend());
    for (gateways, instances) in [
        ([&one, &one], "one instance"),
        ([&one, &two], "two instances"),
    ] {
        for same_bytes in [true, false] {
            let per_round =
                common::same_transaction_at_once(&upstream, gateways, &forwards, same_bytes, 8);
            assert!(
                per_round.iter().all(|n| *n == 1),
                "{instances}, same bytes {same_bytes}: upstream reached {per_round:?} times"
            );
        }
    }
    // The copy that was told to come back gets the certificate the first one got.
    let user = upstream.user();
    let request = user.request();
    let barrier = std::sync::Barrier::new(2);
    let send = |gateway: &sim_ca::gateway::Gateway| {
        barrier.wait();
        gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der())
    };
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| send(&one));
        let b = scope.spawn(|| send(&two));
        (a.join().unwrap(), b.join().unwrap())
    });
    let issued = |body: &[u8]| parse(body).certificates;
    let certificate = match (first.upstream, second.upstream) {
        (None, Some(busy)) | (Some(busy), None) => {
            // Told to come back when the claim is settled or has expired (the holder may
            // have died): this upstream has no exchange bound, so the claim's 120 s.
            assert!(
                busy.status == 503 && matches!(busy.retry_after, Some(119..=120)),
                "{busy:?}"
            );
            let done = if first.body.is_empty() {
                &second.body
            } else {
                &first.body
            };
            issued(done)
        }
        (None, None) => issued(&first.body),
        (Some(a), Some(b)) => panic!("neither was decided: {a:?} {b:?}"),
    };
    let again = one.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(parse(&again.body).outcome, Outcome::Issued);
    assert_eq!(parse(&again.body).certificates, certificate);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An upstream that answers with a certificate edited by `edit` (re-signed by the upstream CA,
/// so it chains): what a misconfigured or compromised upstream template would hand out.
struct Tampering {
    inner: sim_ca::gateway::ca_backend::SimulatedAuthority,
    ca: Arc<Ca>,
    edit: Edit,
    /// Re-signed with SHA-1 (the upstream's key must be P-256) instead of its own hash.
    sha1: bool,
    /// Requests that reached it.
    forwards: Arc<AtomicUsize>,
}

impl Tampering {
    /// `issued` with its subject and extensions edited, re-signed by the issuing CA (so it
    /// still chains).
    fn edited(
        &self,
        issued: &renewal_codec::cmc::Retained<x509_cert::Certificate>,
    ) -> renewal_codec::cmc::Retained<x509_cert::Certificate> {
        let authority = self.ca.authority();
        let tbs = issued.value().tbs_certificate();
        let mut extensions = tbs.extensions().cloned().unwrap_or_default();
        let mut subject = tbs.subject().clone();
        let validity = tbs.validity();
        let mut period = (
            std::time::UNIX_EPOCH + validity.not_before.to_unix_duration(),
            std::time::UNIX_EPOCH + validity.not_after.to_unix_duration(),
        );
        let mut issuer = None;
        (self.edit)(&mut subject, &mut extensions, &mut period, &mut issuer);
        let certificate = authority
            .issue(
                tbs.serial_number().as_bytes().to_vec(),
                subject,
                tbs.subject_public_key_info().clone(),
                period.0,
                period.1,
                extensions,
            )
            .unwrap();
        if issuer.is_none() && !self.sha1 {
            return certificate;
        }
        // The same certificate, signed by the same key, under another issuer name or with
        // another hash.
        let issuer = issuer.unwrap_or_else(|| {
            authority
                .issuing
                .cert
                .value()
                .tbs_certificate()
                .subject()
                .clone()
        });
        let sha1 = self
            .sha1
            .then(|| renewal_codec::sample::Sha1EcdsaSigner::new(&authority.issuing.key).unwrap());
        let signer: &dyn renewal_codec::cmc::Signer = match &sha1 {
            Some(sha1) => sha1,
            None => &authority.issuing.key,
        };
        let tbs = certificate.value().tbs_certificate();
        renewal_codec::x509::issue(
            &renewal_codec::x509::CertificateSpec {
                serial: tbs.serial_number().as_bytes().to_vec(),
                subject: tbs.subject().clone(),
                public_key: tbs.subject_public_key_info().clone(),
                not_before: period.0,
                not_after: period.1,
                extensions: tbs.extensions().cloned().unwrap_or_default(),
            },
            &issuer,
            signer,
        )
        .unwrap()
    }
}

impl sim_ca::gateway::ca_backend::CaBackend for Tampering {
    /// The CA's kup, its certificate edited, re-protected by the CA as an answer to the same
    /// message (the same transaction, the same nonce back).
    fn cmp_message(&self, message: &[u8]) -> Result<Vec<u8>, sim_ca::gateway::ca_backend::Failure> {
        use renewal_codec::cmp::{
            PkiBody, PkiMessage, PkiStatus, PkiStatusInfo,
            answer::{Answer, Responder, respond},
        };
        self.forwards.fetch_add(1, Ordering::SeqCst);
        let der = self.inner.cmp_message(message)?;
        let answer = PkiMessage::parse(&der, &renewal_codec::cmc::Limits::default()).unwrap();
        let PkiBody::Kup(rep) = &answer.body else {
            return Ok(der);
        };
        let Some(issued) = rep.response[0].certificate() else {
            return Ok(der);
        };
        let edited = self.edited(&issued);
        // The header of the message answered, as the answer reflects it.
        let mut asked = answer.header.clone();
        asked.sender = answer.header.recipient.clone();
        asked.sender_nonce = answer.header.recip_nonce.clone();
        asked.sender_kid = answer.header.recip_kid.clone();
        let authority = self.ca.authority();
        let chain = [authority.issuing.cert.clone(), authority.root.cert.clone()];
        Ok(respond(
            &Responder {
                cert: &authority.issuing.cert,
                extra_certs: &chain,
                request: &asked,
                sender_nonce: &[7; 16],
                time: common::now(),
            },
            &Answer::CertRep {
                body_tag: 8,
                cert_req_id: rep.response[0].cert_req_id,
                status: PkiStatusInfo::new(PkiStatus::Accepted, None, None).unwrap(),
                issued: Some(&edited),
                implicit_confirm: answer.header.implicit_confirm(),
            },
            &authority.issuing.key,
        )
        .unwrap())
    }

    fn cmc(
        &self,
        wrapped: &[u8],
        pending: Option<u64>,
    ) -> Result<sim_ca::gateway::ca_backend::CmcAnswer, sim_ca::gateway::ca_backend::Failure> {
        use renewal_codec::cmc::{
            DigestAlgorithm, ResponseParams, StatusStyle, build_full_response,
        };
        self.forwards.fetch_add(1, Ordering::SeqCst);
        let answer = self.inner.cmc(wrapped, pending)?;
        let sim_ca::gateway::ca_backend::CmcAnswer::Response { der, .. } = answer else {
            return Ok(answer);
        };
        let response = parse(&der);
        let authority = self.ca.authority();
        let cas = [authority.issuing.cert.clone(), authority.root.cert.clone()];
        let issued = response
            .certificates
            .iter()
            .find(|c| !cas.contains(c))
            .unwrap();
        let edited = self.edited(issued);
        let params = ResponseParams {
            outcome: response.outcome.clone(),
            status_string: response.status_string.clone(),
            style: StatusStyle::V2,
            request_body_part: 1,
            transaction_id: None,
            recipient_nonce: None,
            issued: Some(edited),
            chain: cas.to_vec(),
            digest: DigestAlgorithm::Sha256,
        };
        let der =
            build_full_response(&params, &authority.issuing.cert, &authority.issuing.key).unwrap();
        Ok(sim_ca::gateway::ca_backend::CmcAnswer::Response {
            der,
            upstream_id: None,
        })
    }
}

/// An edit of an issued certificate: its subject, extensions, validity and issuer name (`None`:
/// the issuing CA's).
type Edit = fn(&mut Name, &mut Vec<Extension>, &mut (SystemTime, SystemTime), &mut Option<Name>);

/// `name` with each attribute's value replaced by `f`'s (`None`: kept).
fn each_value(name: &mut Name, f: impl Fn(&der::asn1::Any) -> Option<der::asn1::Any>) {
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let mut sequence = RdnSequence::default();
    for rdn in name.iter_rdn() {
        let mut edited = RelativeDistinguishedName::default();
        for atv in rdn.iter() {
            let mut atv = atv.clone();
            if let Some(value) = f(&atv.value) {
                atv.value = value;
            }
            edited.insert(atv).unwrap();
        }
        sequence.push(edited);
    }
    *name = <Name as der::Decode>::from_der(&sequence.to_der().unwrap()).unwrap();
}

/// A UTF8String or PrintableString value's text.
fn text(value: &der::asn1::Any) -> Option<String> {
    matches!(
        value.tag(),
        der::Tag::Utf8String | der::Tag::PrintableString
    )
    .then(|| String::from_utf8(value.value().to_vec()).unwrap())
}

fn replace(extensions: &mut Vec<Extension>, new: Extension) {
    extensions.retain(|e| e.extn_id != new.extn_id);
    extensions.push(new);
}

/// The gateway checks what it delivers as strictly as the client does: a certificate whose
/// subject (as issued: the same name in another case or string type is another subject to
/// the client), EKU, SAN, basicConstraints or template is not the renewed certificate's is a
/// 502, audited,
/// and nothing is delivered — on full CMC, on simplereenroll and over CMP.
#[test]
fn the_gateway_delivers_nothing_but_a_renewal() {
    use renewal_codec::x509;
    let edits: [(&str, Edit); 15] = [
        // The same name by RFC 5280 §7.1, not the same name to the client, which compares the
        // subject as it was issued: delivered, it would be refused after the user's card had
        // a new key and a certificate the CA counts as issued.
        ("the subject in capitals", |n, _, _, _| {
            each_value(n, |v| {
                let upper = text(v)?.to_uppercase();
                Some(
                    der::asn1::Any::encode_from(&der::asn1::Utf8StringRef::new(&upper).unwrap())
                        .unwrap(),
                )
            })
        }),
        ("the subject in another string type", |n, _, _, _| {
            each_value(n, |v| {
                let text = text(v)?;
                Some(match v.tag() {
                    der::Tag::Utf8String => der::asn1::Any::encode_from(
                        &der::asn1::PrintableStringRef::new(&text).ok()?,
                    )
                    .unwrap(),
                    _ => {
                        der::asn1::Any::encode_from(&der::asn1::Utf8StringRef::new(&text).unwrap())
                            .unwrap()
                    }
                })
            })
        }),
        ("another subject", |n, _, _, _| {
            *n = "CN=Someone Else,O=cardrenew".parse().unwrap();
        }),
        ("an extra EKU", |_, e, _, _| {
            replace(
                e,
                x509::ext_key_usage(vec![
                    oids::KP_CLIENT_AUTH,
                    oids::KP_SMARTCARD_LOGON,
                    const_oid::db::rfc5280::ID_KP_CODE_SIGNING,
                ])
                .unwrap(),
            )
        }),
        ("another SAN", |_, e, _, _| {
            replace(
                e,
                x509::subject_alt_name(vec![x509_cert::ext::pkix::name::GeneralName::Rfc822Name(
                    der::asn1::Ia5String::new("admin@example.com").unwrap(),
                )])
                .unwrap(),
            )
        }),
        ("a CA", |_, e, _, _| {
            replace(e, x509::basic_constraints(true, None).unwrap())
        }),
        ("another template", |_, e, _, _| {
            replace(
                e,
                x509::certificate_template("1.3.6.1.4.1.311.21.8.99.2".parse().unwrap(), 100, 1)
                    .unwrap(),
            )
        }),
        ("no EKU", |_, e, _, _| {
            e.retain(|x| x.extn_id != oids::EXT_KEY_USAGE)
        }),
        // Not a CA (basicConstraints unchanged), yet able to sign certificates to a relying
        // party that does not look for cA; and without keyUsage, able to do anything.
        ("keyCertSign", |_, e, _, _| {
            replace(
                e,
                x509::key_usage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign).unwrap(),
            )
        }),
        ("no keyUsage", |_, e, _, _| {
            e.retain(|x| x.extn_id != oids::KEY_USAGE)
        }),
        // Unable to sign: no logon, no TLS, no next renewal.
        ("keyUsage without digitalSignature", |_, e, _, _| {
            replace(e, x509::key_usage(KeyUsages::KeyEncipherment).unwrap())
        }),
        // A critical extension no relying party knows: rejected wherever it is checked.
        ("an added critical extension", |_, e, _, _| {
            e.push(Extension {
                extn_id: "1.3.6.1.4.1.55555.1.1".parse().unwrap(),
                critical: true,
                extn_value: der::asn1::OctetString::new(vec![0x05, 0x00]).unwrap(),
            })
        }),
        // Valid no longer, or not for a day yet: the client would refuse it (and roll back).
        ("an expired certificate", |_, _, p, _| {
            p.1 = common::now() - Duration::from_secs(1);
        }),
        ("a certificate valid from tomorrow", |_, _, p, _| {
            p.0 = common::now() + Duration::from_secs(86400);
        }),
        // Signed by the upstream CA's key under another issuer name: it verifies by signature
        // and fails every path built by name (the client refuses it too).
        ("another issuer name", |_, _, _, i| {
            *i = Some("CN=Another Issuing CA,O=cardrenew".parse().unwrap());
        }),
    ];
    for (what, edit) in edits {
        not_delivered(what, &Upstream::start(""), edit, false);
    }
    // Signed with SHA-1 where the renewed certificate was signed with SHA-256 (a P-256
    // upstream, whose key can sign with SHA-1): relying parties that refuse SHA-1 would refuse
    // it once delivered (the client refuses it too).
    let p256 = Upstream::start_with_key("", renewal_codec::cmc::KeyAlgorithm::EcP256);
    not_delivered("SHA-1 after SHA-256", &p256, |_, _, _, _| {}, true);
}

/// Asserts that a gateway in front of `upstream`, which edits what it issues with `edit` (and
/// re-signs it with SHA-1 when `sha1`), delivers nothing over full CMC, simplereenroll and CMP:
/// 502 each time, three `upstream-failed` audit records, none `issued`.
fn not_delivered(what: &str, upstream: &Upstream, edit: Edit, sha1: bool) {
    let backend = Tampering {
        inner: sim_ca::gateway::ca_backend::SimulatedAuthority::new(
            Arc::clone(&upstream.ca),
            upstream.ra_certificate(),
        ),
        ca: Arc::clone(&upstream.ca),
        edit,
        sha1,
        forwards: Arc::default(),
    };
    let gateway = upstream.gateway_over(Store::in_memory().unwrap(), Box::new(backend));
    let user = upstream.user();
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &user.request(), user.old_cert.der());
    let failure = reply
        .upstream
        .unwrap_or_else(|| panic!("{what}: delivered"));
    assert_eq!(failure.status, 502, "{what}: {}", failure.text);
    assert!(reply.body.is_empty(), "{what}");
    let reply = gateway.handle_simple(&user.reenrollment_for_another_key(), user.old_cert.der());
    assert!(
        matches!(&reply, SimpleReply::Unavailable(f) if f.status == 502),
        "{what}: {reply:?}"
    );
    // CMP: the user's kur forwarded nested; the edited certificate is not delivered.
    let kur = renewal_codec::cmp::build::key_update_request(
        &renewal_codec::cmp::build::KeyUpdate {
            old: &user.old_cert,
            recipient: user.old_cert.value().tbs_certificate().issuer().clone(),
            transaction_id: [3; 16],
            sender_nonce: [4; 16],
            time: common::now(),
            implicit_confirm: true,
        },
        &user.old_key,
        &SoftwareKey::generate_p256().unwrap(),
    )
    .unwrap();
    let reply = gateway.handle_cmp(&kur, &[]);
    let failure = reply
        .upstream
        .unwrap_or_else(|| panic!("{what}: delivered over CMP"));
    assert_eq!(failure.status, 502, "{what}: {}", failure.text);
    // Refused for what the certificate says, not for how the answer came.
    assert!(
        failure.text.contains("the upstream's certificate "),
        "{what}: {}",
        failure.text
    );
    assert!(reply.body.is_empty(), "{what}");
    let audit = gateway.audit_trail();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.outcome == AuditOutcome::UpstreamFailed)
            .count(),
        3,
        "{what}: {audit:?}"
    );
    assert!(
        audit.iter().all(|r| r.outcome != AuditOutcome::Issued),
        "{what}"
    );
}

/// A request whose certificate the gateway did not deliver is decided: sent again (a client
/// re-sends the same bytes after a 502), it is told so and not forwarded again — an upstream
/// that does not remember what it answered would issue one more certificate each time. A
/// client's re-send then ends its attempt (a refusal, not one more 502), so an agent waits as
/// after a refusal. A new request (another key) is a new transaction, forwarded.
#[test]
fn a_request_whose_certificate_was_not_delivered_is_not_forwarded_again() {
    let upstream = Upstream::start("");
    let forwards = Arc::new(AtomicUsize::new(0));
    let backend = Tampering {
        inner: sim_ca::gateway::ca_backend::SimulatedAuthority::new(
            Arc::clone(&upstream.ca),
            upstream.ra_certificate(),
        ),
        ca: Arc::clone(&upstream.ca),
        // An upstream template that adds serverAuth.
        edit: |_, e, _, _| {
            e.retain(|x| x.extn_id != oids::EXT_KEY_USAGE);
            e.push(
                renewal_codec::x509::ext_key_usage(vec![
                    oids::KP_CLIENT_AUTH,
                    oids::KP_SERVER_AUTH,
                ])
                .unwrap(),
            );
        },
        sha1: false,
        forwards: Arc::clone(&forwards),
    };
    let gateway = upstream.gateway_over(Store::in_memory().unwrap(), Box::new(backend));
    let user = upstream.user();

    // Full CMC: a 502, then the same bytes refused without reaching the upstream.
    let request = user.request();
    let first = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    let failure = first.upstream.expect("not delivered");
    assert_eq!(failure.status, 502, "{}", failure.text);
    assert_eq!(forwards.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        let again = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
        assert!(again.upstream.is_none(), "{:?}", again.upstream);
        let answer = parse(&again.body);
        assert!(
            matches!(answer.outcome, Outcome::Failed { .. }),
            "{:?}",
            answer.outcome
        );
        let text = answer.status_string.unwrap_or_default();
        assert!(text.contains("not delivered"), "{text}");
    }
    assert_eq!(forwards.load(Ordering::SeqCst), 1, "forwarded again");

    // simplereenroll: the same PKCS#10 again is refused with the reason, not forwarded.
    let pkcs10 = user.reenrollment_for_another_key();
    let first = gateway.handle_simple(&pkcs10, user.old_cert.der());
    assert!(
        matches!(&first, SimpleReply::Unavailable(f) if f.status == 502),
        "{first:?}"
    );
    assert_eq!(forwards.load(Ordering::SeqCst), 2);
    let again = gateway.handle_simple(&pkcs10, user.old_cert.der());
    assert!(
        matches!(
            &again,
            SimpleReply::Rejected(sim_ca::policy::Rejection::Undelivered)
        ),
        "{again:?}"
    );
    assert_eq!(forwards.load(Ordering::SeqCst), 2, "forwarded again");

    // CMP: the same key update again gets a protected error answer, not a second forward.
    let kur = renewal_codec::cmp::build::key_update_request(
        &renewal_codec::cmp::build::KeyUpdate {
            old: &user.old_cert,
            recipient: user.old_cert.value().tbs_certificate().issuer().clone(),
            transaction_id: [5; 16],
            sender_nonce: [6; 16],
            time: common::now(),
            implicit_confirm: true,
        },
        &user.old_key,
        &SoftwareKey::generate_p256().unwrap(),
    )
    .unwrap();
    let first = gateway.handle_cmp(&kur, &[]);
    assert_eq!(first.upstream.map(|f| f.status), Some(502));
    assert_eq!(forwards.load(Ordering::SeqCst), 3);
    let again = gateway.handle_cmp(&kur, &[]);
    assert!(again.upstream.is_none(), "{:?}", again.upstream);
    let answer =
        renewal_codec::cmp::PkiMessage::parse(&again.body, &renewal_codec::cmc::Limits::default())
            .unwrap();
    // A key update is refused in its own answer: a kup whose status is a rejection.
    let renewal_codec::cmp::PkiBody::Kup(rep) = &answer.body else {
        panic!("{}", answer.body.name());
    };
    let status = &rep.response[0].status;
    assert_eq!(
        status.status(),
        renewal_codec::cmp::PkiStatus::Rejection,
        "{}",
        status.text()
    );
    assert!(status.text().contains("not delivered"), "{}", status.text());
    assert!(rep.response[0].certificate().is_none());
    assert_eq!(forwards.load(Ordering::SeqCst), 3, "forwarded again");

    // Another key: a new request, forwarded.
    let other = user.request_for_another_key();
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &other, user.old_cert.der());
    assert_eq!(reply.upstream.map(|f| f.status), Some(502));
    assert_eq!(forwards.load(Ordering::SeqCst), 4);
}

/// `--trust-ra` takes only a certificate made for the job: id-kp-cmcRA (RFC 6402 §2.10). A
/// user's certificate from the same CA is refused at start, not trusted by accident.
#[test]
fn only_a_cmc_ra_certificate_is_trusted_as_an_ra() {
    let ca = common::ca();
    let user = Client::new(&ca);
    let err = match ca.with_trusted_ras(vec![user.old_cert.clone()]) {
        Ok(_) => panic!("a user's certificate was trusted as an RA"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("id-kp-cmcRA"), "{err}");
}

/// Bounded state: a certificate with as many open pending requests as the cap allows gets no
/// new one (HTTP 429 / CERTSRV_E_ENROLL_DENIED), through every decider; a poll of one still
/// collects it.
#[test]
fn open_pending_requests_are_capped_per_certificate() {
    let scenario = format!(
        "max_pending_per_identity = 2\n[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\n\
         renewals_pend = true\n",
        renewal_codec::sample::SAMPLE_TEMPLATE_OID
    );
    for desk in Desk::all(&scenario) {
        let user = desk.upstream.user();
        let requests: Vec<Vec<u8>> = (0..3).map(|_| user.request_for_another_key()).collect();
        for request in &requests[..2] {
            let (outcome, text, _) = desk.cmc(Endpoint::FullCmc, request, user.old_cert.der());
            assert!(
                matches!(outcome, Outcome::Pending { .. }),
                "{}: {text}",
                desk.name()
            );
        }
        let (outcome, text, _) = desk.cmc(Endpoint::FullCmc, &requests[2], user.old_cert.der());
        assert!(
            matches!(outcome, Outcome::Failed { .. }) && text.contains("0x80094011"),
            "{}: {outcome:?} {text}",
            desk.name()
        );
        assert!(text.contains("pending already"), "{}: {text}", desk.name());
        let (outcome, text, _) = desk.cmc(Endpoint::FullCmc, &requests[0], user.old_cert.der());
        assert!(
            matches!(outcome, Outcome::Pending { .. }),
            "{}: a poll was refused: {text}",
            desk.name()
        );
    }
}

/// One semantics: the same hostile requests get the same answer — refused, with the same fail
/// info and HRESULT — from every decider (the gateway's own policy and ledger, or the upstream
/// passed on), under the `strict` profile where names are compared too.
#[test]
fn the_same_refusals_from_every_decider() {
    // Issued?, the HRESULT of the status text, what and the fail info.
    type Answer = (bool, Option<String>, String);
    let mut answers: Vec<(String, Vec<Answer>)> = Vec::new();
    for desk in Desk::all("profile = \"strict\"\n") {
        let user = desk.upstream.user();
        let other = desk.upstream.user();
        let stranger = SoftwareKey::generate_p256().unwrap();
        let replayed = Client::params();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "another subject",
                common::mutated(&user, &user.new_key, |req| {
                    req.info.subject = "CN=Administrator,O=cardrenew".parse().unwrap();
                }),
            ),
            (
                "a PKCS#10 signed by another key",
                common::mutated(&user, &stranger, |_| {}),
            ),
            (
                "signed with another user's old key",
                common::mutated_signed_by(&user, &other, &user.new_key, |_| {}),
            ),
            (
                "the first of a replayed transaction",
                user.request_with(replayed.clone()),
            ),
            (
                "its replay with another key",
                user.request_for_key(&SoftwareKey::generate_p256().unwrap(), replayed),
            ),
        ];
        let mut seen = Vec::new();
        for (what, request) in cases {
            let (outcome, text, _) = desk.cmc(Endpoint::FullCmc, &request, user.old_cert.der());
            let hresult = text.split(':').next().map(str::to_string);
            let issued = matches!(outcome, Outcome::Issued);
            let fail_info = match outcome {
                Outcome::Failed { fail_info } => format!("{fail_info:?}"),
                other => format!("{other:?}"),
            };
            seen.push((issued, hresult, format!("{what}: {fail_info}")));
        }
        answers.push((desk.name().to_string(), seen));
    }
    let (first_name, first) = &answers[0];
    // The cases that must be refused are, and the first of the replayed transaction issues.
    assert_eq!(
        first.iter().map(|a| a.0).collect::<Vec<_>>(),
        [false, false, false, true, false],
        "{first_name}: {first:?}"
    );
    for (name, seen) in &answers[1..] {
        assert_eq!(seen, first, "{name} answers otherwise than {first_name}");
    }
}

/// Drift: polls after collection and polls that do not match were audited differently by the
/// CA and the gateway. The same story — issued, its replay, a refusal, a pending request, its
/// collection, a poll after collection, a poll with another key — leaves the same sequence of
/// audit outcomes in every decider's own trail.
#[test]
fn every_decider_audits_the_same_story_the_same_way() {
    let mut trails: Vec<(&str, Vec<AuditOutcome>)> = Vec::new();
    for desk in Desk::all(&two_templates()) {
        let ca = desk.ca();
        let quick = enrolled(ca, "CN=Quinn Quick,O=Example", "Other");
        let request = quick.request();
        let tls = quick.old_cert.der();
        assert_eq!(
            desk.cmc(Endpoint::FullCmc, &request, tls).0,
            Outcome::Issued
        );
        assert_eq!(
            desk.cmc(Endpoint::FullCmc, &request, tls).0,
            Outcome::Issued
        );
        let mut broken = quick.request_for_another_key();
        let n = broken.len();
        broken[n - 3] ^= 1; // the old key's signature
        assert!(matches!(
            desk.cmc(Endpoint::FullCmc, &broken, tls).0,
            Outcome::Failed { .. }
        ));

        let patient = enrolled(ca, "CN=Pat Patient,O=Example", "SmartcardUser");
        let mut params = Client::params();
        params.transaction_id = 4242;
        let pend = patient.request_with(params.clone());
        let tls = patient.old_cert.der();
        assert!(matches!(
            desk.cmc(Endpoint::FullCmc, &pend, tls).0,
            Outcome::Pending { .. }
        ));
        let id = ca.with_store(|s| s.list_pending()).unwrap()[0].id;
        assert!(ca.decide_pending(id, true).unwrap());
        assert_eq!(desk.cmc(Endpoint::FullCmc, &pend, tls).0, Outcome::Issued);
        assert_eq!(desk.cmc(Endpoint::FullCmc, &pend, tls).0, Outcome::Issued);
        let swapped = patient.request_for_key(&SoftwareKey::generate_p256().unwrap(), params);
        assert!(matches!(
            desk.cmc(Endpoint::FullCmc, &swapped, tls).0,
            Outcome::Failed { .. }
        ));
        let outcomes = desk
            .audit_trail()
            .into_iter()
            .map(|r| r.outcome)
            // The CA's administrator (enrolment, approval), not decisions of the desk.
            .filter(|o| !matches!(o, AuditOutcome::Approved | AuditOutcome::Enrolled))
            .collect();
        trails.push((desk.name(), outcomes));
    }
    let (first, story) = &trails[0];
    assert_eq!(
        story,
        &[
            AuditOutcome::Issued,
            AuditOutcome::ReplayAnswered,
            AuditOutcome::Refused,
            AuditOutcome::Pending,
            AuditOutcome::Issued,
            AuditOutcome::ReplayAnswered,
            AuditOutcome::Refused,
        ],
        "{first}"
    );
    for (name, trail) in &trails[1..] {
        assert_eq!(trail, story, "{name} audits otherwise than {first}");
    }
}
