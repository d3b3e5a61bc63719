//! The checks the client makes on what the card signed (before it leaves the machine) and on
//! what the CA answered (before anything is installed).

use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use super::states::Context;
use crate::{
    client::Mode,
    cmc::{
        Limits, ParsedResponse, PublicKey, ResponseForm, Retained, input::decode_exact,
        parse_request, request::certificate_template, verify_request::verify_pkcs10,
    },
    x509::{
        issued_by, may_sign_cmc_responses, same_renewal_identity, same_renewal_profile, usable_at,
        verify_issued_by,
    },
};

/// Checks what the card signed before anything leaves the machine: the proof of possession
/// verifies with the key the card reported at generation and, for full CMC, the whole request
/// verifies as a CA would check it, signed by the old certificate's key. A card (or middleware)
/// that generated one key and signs with another is caught here, not by the CA.
pub(super) fn self_check(
    body: &[u8],
    mode: Mode,
    new_key: &SubjectPublicKeyInfoOwned,
) -> Result<(), String> {
    let pkcs10 = match mode {
        Mode::SimpleReenroll => {
            let req: Retained<x509_cert::request::CertReq> =
                decode_exact(body, "PKCS#10").map_err(|e| e.to_string())?;
            verify_pkcs10(&req).map_err(|e| e.to_string())?;
            req
        }
        Mode::Cmp => {
            // The protection verifies with the certificate it names, the proof of possession
            // with the key the request asks for — and that key is the card's new one.
            let message = crate::cmp::PkiMessage::parse(body, &Limits::default())
                .map_err(|e| e.to_string())?;
            let old = message
                .protecting_certificate()
                .ok_or("the key update carries no old certificate")?;
            message
                .verify_protection(old.value())
                .map_err(|e| format!("the old key's protection: {e}"))?;
            let crate::cmp::PkiBody::Kur(requests) = &message.body else {
                return Err("not a key update request".into());
            };
            let [request] = requests.as_slice() else {
                return Err("not exactly one certificate request".into());
            };
            request.verify_pop().map_err(|e| e.to_string())?;
            let asked = request.cert_req.cert_template.public_key.as_ref();
            if asked.and_then(|k| PublicKey::from_spki(k).ok())
                != PublicKey::from_spki(new_key).ok()
            {
                return Err("the request does not carry the key the card generated".into());
            }
            return Ok(());
        }
        Mode::FullCmc | Mode::Cmc | Mode::Wstep => {
            let facts = parse_request(body, &Limits::default())
                .and_then(|p| p.verify())
                .map_err(|e| e.to_string())?;
            if !facts.old_key_signed {
                return Err("the old key's signature is missing".into());
            }
            facts.pkcs10
        }
    };
    let signed_with = PublicKey::from_spki(&pkcs10.value().info.public_key);
    if signed_with.ok() != PublicKey::from_spki(new_key).ok() {
        return Err("the request does not carry the key the card generated".into());
    }
    Ok(())
}

/// Why the client does not install what the CA answered. The two kinds differ in what
/// asking again would bring: an answer that did not hold up may be right next time (a clock
/// that was off, a response mangled on its way), while a well-issued certificate that is not
/// the renewed certificate again (other names, purposes, template) is what the CA's template
/// makes, and it would issue the same one again.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(super) enum Unaccepted {
    /// Its signer, the key it certifies, its chain or its dates.
    Answer(String),
    /// Its subject, names, purposes, powers or template are not the renewed certificate's.
    NotARenewal(String),
}

impl std::fmt::Display for Unaccepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Answer(detail) | Self::NotARenewal(detail) => f.write_str(detail),
        }
    }
}

impl From<Unaccepted> for super::RollbackCause {
    fn from(unaccepted: Unaccepted) -> Self {
        match unaccepted {
            Unaccepted::Answer(detail) => Self::BadAnswer(detail),
            Unaccepted::NotARenewal(detail) => Self::NotARenewal(detail),
        }
    }
}

/// The checks before anything is installed: the response is signed by a CA we trust (full
/// responses), the certificate chains to it, certifies the new key, is valid now, and carries
/// the old subject, names, purposes and template. Returns the certificate to install.
pub(super) fn verify_issued(
    cx: &Context,
    response: &ParsedResponse,
    old: &Certificate,
    new_key: &SubjectPublicKeyInfoOwned,
) -> Result<Retained<Certificate>, Unaccepted> {
    let checked = the_answer_holds_up(cx, response, new_key).map_err(Unaccepted::Answer)?;
    is_a_renewal(cx, checked.value(), old).map_err(Unaccepted::NotARenewal)?;
    Ok(checked.clone())
}

/// The answer's signer, the certificate for the new key, its chain and its dates.
fn the_answer_holds_up<'r>(
    cx: &Context,
    response: &'r ParsedResponse,
    new_key: &SubjectPublicKeyInfoOwned,
) -> Result<&'r Retained<Certificate>, String> {
    let anchors = &cx.trust_anchors;
    if response.form == ResponseForm::FullPkiResponse {
        let signer = response
            .verify_signer()
            .map_err(|e| format!("response signature: {e}"))?;
        // The CA itself, or a certificate it issued to sign CMC (a CA's, or an RA's such as a
        // renewal gateway's) — not just any certificate it issued: a user's chains to it too.
        let trusted = anchors.contains(signer)
            || (may_sign_cmc_responses(signer.value())
                && anchors
                    .iter()
                    .any(|a| verify_issued_by(signer, a.value()).is_ok()));
        if !trusted {
            return Err("the response is signed by a certificate we do not trust".into());
        }
    }
    // Keys compare as parsed values: a CA may re-encode the key canonically.
    let new_key = PublicKey::from_spki(new_key).map_err(|e| format!("the new key: {e}"))?;
    let issued = response
        .certificates
        .iter()
        .find(|c| {
            PublicKey::from_spki(c.value().tbs_certificate().subject_public_key_info())
                .is_ok_and(|k| k == new_key)
        })
        .ok_or("no certificate in the answer certifies the new key")?;
    // By signature and by name: a certificate that names another issuer verifies by the
    // CA's key and then fails every path built by name.
    if !anchors.iter().any(|a| issued_by(issued, a.value())) {
        return Err("the issued certificate does not chain to the CA".into());
    }
    let tbs = issued.value().tbs_certificate();
    usable_at(tbs.validity(), (cx.now)()).map_err(|e| format!("the issued certificate {e}"))?;
    Ok(issued)
}

/// Whether `issued` is the renewed certificate `old` again: its template, subject, names,
/// purposes and powers.
fn is_a_renewal(cx: &Context, issued: &Certificate, old: &Certificate) -> Result<(), String> {
    // The template: the renewed certificate's, or the one the user asked for. A name and an
    // OID cannot be compared here (a v2 template extension carries only the OID, and the CA
    // maps a name to its template): what can be compared must match.
    let old_template = certificate_template(old);
    let issued_template = certificate_template(issued);
    let comparable = |a: &crate::cmc::microsoft::TemplateRef,
                      b: &crate::cmc::microsoft::TemplateRef| {
        (a.oid.is_some() && b.oid.is_some()) || (a.name.is_some() && b.name.is_some())
    };
    if let Some(wanted) = cx.template.as_ref().or(old_template.as_ref()) {
        let got = issued_template
            .as_ref()
            .ok_or("the issued certificate names no template")?;
        if comparable(wanted, got) && !wanted.matches(got) {
            return Err(format!(
                "the issued certificate is for template {got}, not {wanted}"
            ));
        }
    }
    // A renewal is the renewed certificate with a new key: another subject, subjectAltName
    // (the account a smart card logs on to) or basicConstraints, or the power to sign
    // certificates, is another certificate — refused here as a gateway refuses to deliver it.
    // Its purposes are the renewed certificate's too, unless it was issued on another template
    // the user asked for (whose purposes are its own).
    let same_template = match (&issued_template, &old_template) {
        (Some(a), Some(b)) => a.matches(b),
        (None, None) => true,
        _ => false,
    };
    if same_template || cx.template.is_none() {
        same_renewal_profile(issued, old)
    } else {
        same_renewal_identity(issued, old)
    }
    .map_err(|what| format!("the issued certificate has another {what}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::{
        cmc::{
            DigestAlgorithm, Outcome, ResponseParams, Signer, SoftwareKey, StatusStyle,
            build_full_response, oids, parse_response,
        },
        sample::{KeyKind, Sample},
        token::ContainerId,
        x509::{self, CertificateSpec},
    };

    /// A certificate for a fresh key from the sample CA, with `extensions`.
    fn issued(
        sample: &Sample,
        extensions: Vec<x509_cert::ext::Extension>,
    ) -> (SoftwareKey, Retained<Certificate>) {
        let key = SoftwareKey::generate_p256().unwrap();
        let now = crate::sample::fixed_now();
        let spec = CertificateSpec {
            serial: vec![0x42, 0x17],
            subject: "CN=signer".parse().unwrap(),
            public_key: key.public_key().clone(),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(86400),
            extensions,
        };
        let cert = x509::issue(
            &spec,
            sample.ca_cert.value().tbs_certificate().subject(),
            &sample.ca_key,
        )
        .unwrap();
        (key, cert)
    }

    /// The issued certificate for the sample's new key, in a response signed by `signer`.
    fn verdict(
        sample: &Sample,
        signer: (&SoftwareKey, &Retained<Certificate>),
    ) -> Result<(), String> {
        verdict_at(sample, signer, crate::sample::fixed_now())
    }

    /// [`verdict`] with the client's clock at `now` (the certificate is valid from a minute
    /// before the sample's fixed now for a day).
    fn verdict_at(
        sample: &Sample,
        signer: (&SoftwareKey, &Retained<Certificate>),
        now: std::time::SystemTime,
    ) -> Result<(), String> {
        verdict_edited(sample, signer, now, None, |_| {})
    }

    /// [`verdict_at`] for an issued certificate whose extensions (the renewed certificate's)
    /// `edit` changes.
    fn verdict_edited(
        sample: &Sample,
        signer: (&SoftwareKey, &Retained<Certificate>),
        now: std::time::SystemTime,
        template: Option<crate::cmc::microsoft::TemplateRef>,
        edit: impl FnOnce(&mut Vec<x509_cert::ext::Extension>),
    ) -> Result<(), String> {
        verdict_built(sample, signer, now, template, |spec, _| {
            edit(&mut spec.extensions)
        })
        .map_err(|e| e.to_string())
    }

    /// [`verdict_at`] for an issued certificate (the renewed one for the new key, signed by
    /// the sample CA's key) whose contents and issuer name `edit` changes.
    fn verdict_built(
        sample: &Sample,
        signer: (&SoftwareKey, &Retained<Certificate>),
        now: std::time::SystemTime,
        template: Option<crate::cmc::microsoft::TemplateRef>,
        edit: impl FnOnce(&mut CertificateSpec, &mut x509_cert::name::Name),
    ) -> Result<(), Unaccepted> {
        verdict_issued_by(sample, signer, now, template, &sample.ca_key, edit)
    }

    /// The renewed certificate again for the sample's new key, valid from a minute before
    /// the sample's fixed now for a day, under `serial`.
    fn renewal_spec(sample: &Sample, serial: u8) -> CertificateSpec {
        let now = crate::sample::fixed_now();
        let old = sample.old_cert.value().tbs_certificate();
        CertificateSpec {
            serial: vec![serial],
            subject: old.subject().clone(),
            public_key: sample.new_key.public_key().clone(),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(86400),
            extensions: old.extensions().cloned().unwrap_or_default(),
        }
    }

    /// [`verdict_built`] with the certificate signed by `issuer_key`.
    fn verdict_issued_by(
        sample: &Sample,
        signer: (&SoftwareKey, &Retained<Certificate>),
        now: std::time::SystemTime,
        template: Option<crate::cmc::microsoft::TemplateRef>,
        issuer_key: &dyn crate::cmc::Signer,
        edit: impl FnOnce(&mut CertificateSpec, &mut x509_cert::name::Name),
    ) -> Result<(), Unaccepted> {
        let renewed = {
            let mut spec = renewal_spec(sample, 0x43);
            let mut issuer = sample.ca_cert.value().tbs_certificate().subject().clone();
            edit(&mut spec, &mut issuer);
            x509::issue(&spec, &issuer, issuer_key).unwrap()
        };
        let params = ResponseParams {
            outcome: Outcome::Issued,
            status_string: None,
            style: StatusStyle::V2,
            request_body_part: 1,
            transaction_id: None,
            recipient_nonce: None,
            issued: Some(renewed),
            chain: vec![sample.ca_cert.clone()],
            digest: DigestAlgorithm::Sha256,
        };
        let der = build_full_response(&params, signer.1, signer.0).unwrap();
        let response = parse_response(&der, &Limits::default()).unwrap();
        let cx = Context {
            old: ContainerId("9a".into()),
            mode: Mode::FullCmc,
            template,
            trust_anchors: vec![sample.ca_cert.clone()],
            max_polls: 0,
            retry: crate::client::processor::RetryPolicy::default(),
            attest: false,
            implicit_confirm: false,
            now: Box::new(move || now),
        };
        verify_issued(
            &cx,
            &response,
            sample.old_cert.value(),
            sample.new_key.public_key(),
        )
        .map(|_| ())
    }

    #[test]
    fn a_response_is_signed_by_the_ca_or_an_ra_never_by_any_certificate_it_issued() {
        let sample = Sample::generate(KeyKind::P256).unwrap();
        assert_eq!(verdict(&sample, (&sample.ca_key, &sample.ca_cert)), Ok(()));
        let (key, ra) = issued(
            &sample,
            vec![x509::ext_key_usage(vec![oids::KP_CLIENT_AUTH, oids::KP_CMC_RA]).unwrap()],
        );
        assert_eq!(verdict(&sample, (&key, &ra)), Ok(()));
        // A user's certificate chains to the same CA: it signs nothing the client accepts.
        assert_eq!(
            verdict(&sample, (&sample.old_key, &sample.old_cert)),
            Err("the response is signed by a certificate we do not trust".into())
        );
        let (key, server) = issued(
            &sample,
            vec![x509::ext_key_usage(vec![oids::KP_SERVER_AUTH]).unwrap()],
        );
        assert!(verdict(&sample, (&key, &server)).is_err());
        let (key, none) = issued(&sample, vec![]);
        assert!(verdict(&sample, (&key, &none)).is_err());
    }

    #[test]
    fn an_issued_certificate_must_be_valid_on_the_clients_clock() {
        let sample = Sample::generate(KeyKind::P256).unwrap();
        let ca = (&sample.ca_key, &sample.ca_cert);
        let issued_at = crate::sample::fixed_now();
        let minutes = |m: u64| Duration::from_secs(m * 60);
        // Valid from a minute before `issued_at` for a day.
        assert_eq!(verdict_at(&sample, ca, issued_at), Ok(()));
        // A client clock behind the CA's by up to the skew still accepts it.
        assert_eq!(verdict_at(&sample, ca, issued_at - minutes(10)), Ok(()));
        let early = verdict_at(&sample, ca, issued_at - minutes(12)).unwrap_err();
        assert!(early.contains("not valid yet"), "{early}");
        // On its last second it is usable; at its notAfter it has expired.
        let last = issued_at + Duration::from_secs(86400 - 1);
        assert_eq!(verdict_at(&sample, ca, last), Ok(()));
        let late = verdict_at(&sample, ca, last + Duration::from_secs(1)).unwrap_err();
        assert!(late.contains("has expired"), "{late}");
    }

    /// A renewal is the renewed certificate again with a new key: a certificate whose
    /// subjectAltName (the account a smart card logs on to), extendedKeyUsage or
    /// basicConstraints differ, or that may sign certificates, is not installed — the same rule
    /// a gateway applies before delivering one.
    #[test]
    fn an_issued_certificate_keeps_the_renewed_profile() {
        use x509_cert::ext::Extension;
        let sample = Sample::generate(KeyKind::P256).unwrap();
        let ca = (&sample.ca_key, &sample.ca_cert);
        let now = crate::sample::fixed_now();
        let replace = |extensions: &mut Vec<Extension>, new: Extension| {
            extensions.retain(|e| e.extn_id != new.extn_id);
            extensions.push(new);
        };
        assert_eq!(verdict_edited(&sample, ca, now, None, |_| {}), Ok(()));
        let refused = [
            (
                "subjectAltName",
                Box::new(|e: &mut Vec<Extension>| {
                    let other = der::asn1::Ia5String::new("mallory@example.test").unwrap();
                    replace(
                        e,
                        x509::subject_alt_name(vec![
                            x509_cert::ext::pkix::name::GeneralName::Rfc822Name(other),
                        ])
                        .unwrap(),
                    )
                }) as Box<dyn Fn(&mut Vec<Extension>)>,
            ),
            (
                "extendedKeyUsage",
                Box::new(|e: &mut Vec<Extension>| {
                    replace(
                        e,
                        x509::ext_key_usage(vec![
                            oids::KP_CLIENT_AUTH,
                            oids::KP_SMARTCARD_LOGON,
                            oids::KP_SERVER_AUTH,
                        ])
                        .unwrap(),
                    )
                }),
            ),
            (
                "basicConstraints",
                Box::new(|e: &mut Vec<Extension>| {
                    replace(e, x509::basic_constraints(true, None).unwrap())
                }),
            ),
            (
                "keyUsage",
                Box::new(|e: &mut Vec<Extension>| e.retain(|x| x.extn_id != oids::KEY_USAGE)),
            ),
            (
                "keyUsage",
                Box::new(|e: &mut Vec<Extension>| {
                    replace(
                        e,
                        x509::key_usage(x509_cert::ext::pkix::KeyUsages::KeyEncipherment).unwrap(),
                    )
                }),
            ),
            (
                "critical extension",
                Box::new(|e: &mut Vec<Extension>| e.push(unknown_extension(true))),
            ),
            // The same EKU again in a second extension (RFC 5280 §4.2 forbids two): not read
            // as either one.
            (
                "extendedKeyUsage",
                Box::new(|e: &mut Vec<Extension>| {
                    let eku = e.iter().find(|x| x.extn_id == oids::EXT_KEY_USAGE).cloned();
                    e.extend(eku);
                }),
            ),
        ];
        for (what, edit) in refused {
            let verdict = verdict_edited(&sample, ca, now, None, |e| edit(e));
            assert!(
                verdict.as_ref().is_err_and(|e| e.contains(what)),
                "{what}: {verdict:?}"
            );
        }
        // A non-critical extension the renewed certificate lacked (ADCS adds its SID
        // extension to renewals of older certificates) is ignored where it is not known.
        assert_eq!(
            verdict_edited(&sample, ca, now, None, |e| e.push(unknown_extension(false))),
            Ok(())
        );
        // Renewed onto another template that the user asked for: its purposes are its own,
        // its names and powers still the renewed certificate's.
        let other: der::asn1::ObjectIdentifier = "1.3.6.1.4.1.311.21.8.99.1".parse().unwrap();
        let asked = crate::cmc::microsoft::TemplateRef::from_user_text(&other.to_string());
        let onto_other = |e: &mut Vec<Extension>| {
            replace(e, x509::certificate_template(other, 100, 1).unwrap());
            replace(
                e,
                x509::ext_key_usage(vec![oids::KP_CLIENT_AUTH, oids::KP_SERVER_AUTH]).unwrap(),
            );
        };
        assert_eq!(
            verdict_edited(&sample, ca, now, Some(asked.clone()), onto_other),
            Ok(())
        );
        // Not asked for, another template is refused.
        let verdict = verdict_edited(&sample, ca, now, None, onto_other);
        assert!(
            verdict
                .as_ref()
                .is_err_and(|e| e.contains("is for template 1.3.6.1.4.1.311.21.8.99.1")),
            "{verdict:?}"
        );
        // Asked for by name, which the certificate's OID cannot be compared with: the CA
        // mapped the name to its template; the purposes are the template's.
        let by_name = crate::cmc::microsoft::TemplateRef::from_user_text("OtherTemplate");
        assert_eq!(
            verdict_edited(&sample, ca, now, Some(by_name), onto_other),
            Ok(())
        );
        // Asked for by another OID than the one issued: refused.
        let elsewhere =
            crate::cmc::microsoft::TemplateRef::from_user_text("1.3.6.1.4.1.311.21.8.99.7");
        let verdict = verdict_edited(&sample, ca, now, Some(elsewhere), onto_other);
        assert!(
            verdict
                .as_ref()
                .is_err_and(|e| e.contains("is for template")),
            "{verdict:?}"
        );
        let verdict = verdict_edited(&sample, ca, now, Some(asked), |e| {
            onto_other(e);
            replace(e, x509::basic_constraints(true, None).unwrap());
        });
        assert!(
            verdict
                .as_ref()
                .is_err_and(|e| e.contains("basicConstraints")),
            "{verdict:?}"
        );
    }

    /// Signed by the CA's key but naming another issuer, a certificate verifies by signature
    /// and fails every path built by name: not installed. The same issuer name in another
    /// string type or case is the same name (RFC 5280 §7.1).
    #[test]
    fn an_issued_certificate_names_the_ca_that_signed_it() {
        let sample = Sample::generate(KeyKind::P256).unwrap();
        let ca = (&sample.ca_key, &sample.ca_cert);
        let now = crate::sample::fixed_now();
        let other = verdict_built(&sample, ca, now, None, |_, issuer| {
            *issuer = "CN=Another CA,O=cardrenew".parse().unwrap();
        });
        assert_eq!(
            other,
            Err(Unaccepted::Answer(
                "the issued certificate does not chain to the CA".into()
            ))
        );
        let text = x509::name_text(sample.ca_cert.value().tbs_certificate().subject());
        let same = verdict_built(&sample, ca, now, None, |_, issuer| {
            *issuer = text.to_uppercase().parse().unwrap();
        });
        assert_eq!(same, Ok(()), "{text}");
    }

    /// What asking again would bring decides the kind: a certificate that is not the renewed
    /// one again (names, purposes, powers, template) is what the CA's template makes — the
    /// agent waits long, as after a refusal; a certificate not valid on the client's clock may
    /// be right next time — the agent backs off.
    #[test]
    fn a_certificate_that_is_not_the_renewed_one_is_not_a_renewal_the_rest_a_bad_answer() {
        use x509_cert::ext::Extension;
        let sample = Sample::generate(KeyKind::P256).unwrap();
        let ca = (&sample.ca_key, &sample.ca_cert);
        let now = crate::sample::fixed_now();
        let with = |new: Extension| {
            move |spec: &mut CertificateSpec, _: &mut x509_cert::name::Name| {
                spec.extensions.retain(|e| e.extn_id != new.extn_id);
                spec.extensions.push(new);
            }
        };
        let purposes = x509::ext_key_usage(vec![oids::KP_CLIENT_AUTH, oids::KP_SERVER_AUTH]);
        let cases = [
            with(purposes.unwrap()),
            with(x509::basic_constraints(true, None).unwrap()),
            with(
                x509::certificate_template("1.3.6.1.4.1.311.21.8.99.1".parse().unwrap(), 100, 1)
                    .unwrap(),
            ),
        ];
        for edit in cases {
            let verdict = verdict_built(&sample, ca, now, None, edit);
            assert!(
                matches!(&verdict, Err(Unaccepted::NotARenewal(_))),
                "{verdict:?}"
            );
            let cause = super::super::RollbackCause::from(verdict.unwrap_err());
            assert_eq!(cause.kind(), "not-a-renewal", "{cause}");
        }
        let late = verdict_built(
            &sample,
            ca,
            now + Duration::from_secs(2 * 86400),
            None,
            |_, _| {},
        );
        assert!(
            matches!(&late, Err(Unaccepted::Answer(e)) if e.contains("has expired")),
            "{late:?}"
        );
        assert_eq!(
            super::super::RollbackCause::from(late.unwrap_err()).kind(),
            "bad-answer"
        );
    }

    /// A renewal signed with SHA-1 where the renewed certificate had SHA-256 verifies and
    /// chains — and is not installed: relying parties that refuse SHA-1 would refuse it after
    /// the old certificate was deleted. Renewing a SHA-1 certificate with SHA-1 is no
    /// weakening.
    #[test]
    fn a_renewal_signed_with_sha1_after_sha2_is_not_installed() {
        let sample = Sample::generate(KeyKind::P256).unwrap();
        let sha1 = crate::sample::Sha1EcdsaSigner::new(&sample.ca_key).unwrap();
        let now = crate::sample::fixed_now();
        let mut spec = renewal_spec(&sample, 0x44);
        let issuer = sample.ca_cert.value().tbs_certificate().subject();
        let weak = x509::issue(&spec, issuer, &sha1).unwrap();
        // A genuine signature: it chains to the CA.
        assert!(x509::issued_by(&weak, sample.ca_cert.value()));
        assert_eq!(
            x509::same_renewal_profile(weak.value(), sample.old_cert.value()),
            Err("signature hash (SHA-1, where the renewed certificate's was not)")
        );
        // Through the client's checks, in a response the CA signed: not a renewal.
        let ca = (&sample.ca_key, &sample.ca_cert);
        let verdict = verdict_issued_by(&sample, ca, now, None, &sha1, |_, _| {});
        assert!(
            matches!(&verdict, Err(Unaccepted::NotARenewal(e)) if e.contains("signature hash")),
            "{verdict:?}"
        );
        spec.serial = vec![0x45];
        let renewed_sha1 = x509::issue(&spec, issuer, &sha1).unwrap();
        assert_eq!(
            x509::same_renewal_profile(renewed_sha1.value(), weak.value()),
            Ok(()),
            "the same hash as the renewed certificate's renews"
        );
        // One SHA-2 for another is no weakening: a CA that moved from P-384 (SHA-384) to a
        // P-256 or RSA key signs with SHA-256.
        let p384 = SoftwareKey::generate_p384().unwrap();
        spec.serial = vec![0x46];
        let sha384 = x509::issue(&spec, issuer, &p384).unwrap();
        spec.serial = vec![0x47];
        let sha256 = x509::issue(&spec, issuer, &sample.ca_key).unwrap();
        assert_eq!(
            x509::same_renewal_profile(sha256.value(), sha384.value()),
            Ok(())
        );
    }

    /// An extension no relying party knows (a private OID, a NULL value).
    fn unknown_extension(critical: bool) -> x509_cert::ext::Extension {
        x509_cert::ext::Extension {
            extn_id: "1.3.6.1.4.1.55555.1.1".parse().unwrap(),
            critical,
            extn_value: der::asn1::OctetString::new(vec![0x05, 0x00]).unwrap(),
        }
    }
}
