//! What a PKCS#10's attributes ask for: the template (as a name-value pair or Microsoft's
//! extensions), the name-value pairs themselves, and the requested extensions.

use x509_cert::request::CertReq;

use super::attribute_values;
use crate::cmc::{
    error::{DerContext, Result},
    microsoft::{NameValuePair, TemplateRef},
    oids,
};

/// The template a PKCS#10 asks for: its `CertificateTemplate` pair and its 21.7 / 20.2
/// extensions, merged.
pub fn request_template(req: &CertReq, pairs: &[(String, String)]) -> Result<Option<TemplateRef>> {
    let from_pair = pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("CertificateTemplate"))
        .map(|(_, v)| TemplateRef::from_user_text(v));
    let mut from_ext = None;
    for oid in [oids::ID_EXTENSION_REQUEST, oids::MS_EXTENSION_REQUEST] {
        for any in attribute_values(req, oid) {
            let exts: Vec<x509_cert::ext::Extension> =
                any.decode_as().malformed("extensionRequest")?;
            for e in exts {
                if let Some(t) = TemplateRef::from_extension(e.extn_id, e.extn_value.as_bytes()) {
                    from_ext = Some(match from_ext {
                        Some(prev) => TemplateRef::merge(prev, t),
                        None => t,
                    });
                }
            }
        }
    }
    Ok(match (from_pair, from_ext) {
        (Some(p), Some(e)) => Some(p.merge(e)),
        (p, e) => p.or(e),
    })
}

/// Every template indication of a PKCS#10, each on its own: the `CertificateTemplate` pair and
/// each 21.7 / 20.2 extension. A CA must check each (a merged view would let a pair asking
/// for one template hide behind an inherited extension naming another).
pub fn request_template_indications(
    req: &CertReq,
    pairs: &[(String, String)],
) -> Result<Vec<TemplateRef>> {
    let mut out: Vec<TemplateRef> = pairs
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("CertificateTemplate"))
        .map(|(_, v)| TemplateRef::from_user_text(v))
        .collect();
    for e in requested_extensions(req)? {
        out.extend(TemplateRef::from_extension(
            e.extn_id,
            e.extn_value.as_bytes(),
        ));
    }
    Ok(out)
}

/// The name/value pairs (`szOID_ENROLLMENT_NAME_VALUE_PAIR`) a PKCS#10 carries as attributes.
pub fn pkcs10_name_value_pairs(req: &CertReq) -> Result<Vec<(String, String)>> {
    attribute_values(req, oids::MS_ENROLLMENT_NAME_VALUE_PAIR)
        .map(|v| {
            v.decode_as::<NameValuePair>()
                .map(|p| p.to_strings())
                .malformed("name/value pair")
        })
        .collect()
}

/// The extensions a PKCS#10 requests.
pub fn requested_extensions(req: &CertReq) -> Result<Vec<x509_cert::ext::Extension>> {
    let mut out = Vec::new();
    for oid in [oids::ID_EXTENSION_REQUEST, oids::MS_EXTENSION_REQUEST] {
        for any in attribute_values(req, oid) {
            let exts: Vec<x509_cert::ext::Extension> =
                any.decode_as().malformed("extensionRequest")?;
            out.extend(exts);
        }
    }
    Ok(out)
}
