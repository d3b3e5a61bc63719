//! The Certificate Enrollment Policy face (MS-XCEP `GetPolicies`), served at ADCS's path
//! `/<name>_CEP_Certificate/service.svc/CEP`: the CA's templates with their OIDs, validity
//! and renewal periods, and this server's CES URI with certificate authentication and
//! `renewalOnly` (sim-ca renews, it does not enroll).

use renewal_codec::{
    wstep::{Answer, DEFAULT_CA_NAME, XmlLimits, build_answer, ces_path},
    xcep::{
        AUTH_CERTIFICATE, CaPolicy, CaUri, Policies, TemplatePolicy, build_response, parse_request,
    },
};

use crate::service::Ca;

/// Whether `path` is a CEP endpoint.
pub fn is_cep_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_suffix("_CEP_Certificate/service.svc/CEP"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The renewal period a template advertises: ADCS's default of six weeks, or a third of a
/// shorter lifetime (a 30-day certificate renews in its last 10 days).
fn renewal_days(validity_days: u32) -> u32 {
    (validity_days / 3).min(42)
}

/// The policy this CA publishes; `host` (the request's Host header) names the CES URI.
pub fn policies(ca: &Ca, host: &str) -> Policies {
    let templates = ca
        .templates()
        .all()
        .iter()
        .map(|t| TemplatePolicy {
            oid: t.oid.to_string(),
            name: t.name.clone(),
            schema: 2,
            validity_seconds: u64::from(t.validity_days) * 86400,
            renewal_seconds: u64::from(renewal_days(t.validity_days)) * 86400,
            cas: vec![0],
        })
        .collect();
    Policies {
        policy_id: "{5E6D2F7A-0C1B-4A7E-9D3C-000000CA7D00}".into(),
        friendly_name: "cardrenew sim-ca".into(),
        next_update_hours: 8,
        templates,
        cas: vec![CaPolicy {
            reference: 0,
            uris: vec![CaUri {
                client_authentication: AUTH_CERTIFICATE,
                uri: format!("https://{host}{}", ces_path(DEFAULT_CA_NAME)),
                priority: 1,
                renewal_only: true,
            }],
            certificate: ca.authority().issuing.cert.der().to_vec(),
        }],
    }
}

/// Handles one CEP request: (HTTP status, envelope).
pub fn handle(ca: &Ca, envelope: &[u8], host: &str) -> (u16, String) {
    match parse_request(envelope, &XmlLimits::default()) {
        Ok(message_id) => (
            200,
            build_response(message_id.as_deref(), &policies(ca, host)),
        ),
        Err(e) => (
            500,
            build_answer(
                None,
                &Answer::Fault {
                    code: match e {
                        renewal_codec::wstep::WstepError::NotUnderstood { .. } => {
                            "s:MustUnderstand"
                        }
                        _ => "s:Sender",
                    }
                    .into(),
                    reason: e.to_string(),
                    error_code: Some(0x8007_000Du32 as i32),
                    request_id: None,
                },
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cep_paths_and_renewal_periods() {
        assert!(is_cep_path(
            "/ADPolicyProvider_CEP_Certificate/service.svc/CEP"
        ));
        assert!(!is_cep_path("/_CEP_Certificate/service.svc/CEP"));
        assert!(!is_cep_path("/x_CES_Certificate/service.svc/CES"));
        assert_eq!(renewal_days(365), 42);
        assert_eq!(renewal_days(30), 10);
    }
}
