//! Certificate templates, as ADCS has them: an OID and a name, a validity, the key algorithms
//! allowed, and whether renewals pend for approval (ADCS pends every renewal when the
//! template's renewal rule is "same criteria as enrollment" with manager approval).

use std::str::FromStr;

use der::asn1::ObjectIdentifier;
use renewal_codec::{
    cmc::KeyAlgorithm,
    cmc::{Retained, microsoft::TemplateRef},
};
use serde::Deserialize;
use x509_cert::Certificate;

/// One template.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Template {
    /// Template OID (what the 21.7 extension carries).
    pub oid: ObjectIdentifier,
    /// Template name.
    pub name: String,
    /// Validity of issued certificates, in days.
    pub validity_days: u32,
    /// Key algorithms a request may use.
    pub allowed_keys: Vec<KeyAlgorithm>,
    /// Renewals wait for approval.
    pub renewals_pend: bool,
    /// New keys must be attested: the request carries the card's attestation of its key,
    /// chaining to one of these vendor roots ([`renewal_codec::cmc::attestation`]). Empty: no
    /// attestation asked for.
    pub attestation_roots: Vec<Retained<Certificate>>,
    /// The template's application policies, as ADCS has them: when set, what it issues carries
    /// exactly these extendedKeyUsage purposes, whatever the renewed certificate had (a
    /// template an administrator changed); unset, a renewal keeps the renewed certificate's.
    pub purposes: Option<Vec<ObjectIdentifier>>,
}

impl Template {
    /// Whether `reference` names this template (by OID or name).
    pub fn matches(&self, reference: &TemplateRef) -> bool {
        reference.oid == Some(self.oid)
            || reference
                .name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&self.name))
    }
}

/// The templates a CA offers.
#[derive(Clone, Debug)]
pub struct TemplateRegistry {
    templates: Vec<Template>,
}

/// A template as written in a scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// OID.
    pub oid: String,
    /// Name.
    pub name: String,
    /// Validity in days.
    #[serde(default = "default_days")]
    pub validity_days: u32,
    /// "p256", "rsa2048".
    #[serde(default = "default_keys")]
    pub allowed_keys: Vec<String>,
    /// Renewals pend.
    #[serde(default)]
    pub renewals_pend: bool,
    /// New keys must be attested by a card whose attestation chains to these vendor roots:
    /// a PEM file's path, or the PEM itself (`sim-card attestation-root` prints the simulated
    /// cards' root).
    #[serde(default)]
    pub attestation_roots: Option<String>,
    /// The extendedKeyUsage purposes what it issues carries (dotted OIDs, or `clientAuth`,
    /// `serverAuth`, `smartcardLogon`, `emailProtection`, `codeSigning`); unset, a renewal
    /// keeps the renewed certificate's.
    #[serde(default)]
    pub extended_key_usage: Option<Vec<String>>,
}

/// A purpose as a scenario names it: a dotted OID or one of the common names.
fn purpose(name: &str) -> Result<ObjectIdentifier, String> {
    use renewal_codec::cmc::oids;
    Ok(match name {
        "clientAuth" => oids::KP_CLIENT_AUTH,
        "serverAuth" => oids::KP_SERVER_AUTH,
        "smartcardLogon" => oids::KP_SMARTCARD_LOGON,
        "emailProtection" => const_oid::db::rfc5280::ID_KP_EMAIL_PROTECTION,
        "codeSigning" => const_oid::db::rfc5280::ID_KP_CODE_SIGNING,
        other => ObjectIdentifier::from_str(other)
            .map_err(|_| format!("unknown purpose {other:?} (a dotted OID, or clientAuth, serverAuth, smartcardLogon, emailProtection, codeSigning)"))?,
    })
}

/// The certificates of a PEM bundle given inline or by path; at least one.
fn attestation_roots(source: &str) -> Result<Vec<Retained<Certificate>>, String> {
    let pem = if source.trim_start().starts_with("-----BEGIN") {
        source.to_string()
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("cannot read {source}: {e}"))?
    };
    let roots = Certificate::load_pem_chain(pem.as_bytes())
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?
        .into_iter()
        .map(|c| {
            use der::Encode;
            c.to_der()
                .and_then(|der| Retained::from_der(&der))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if roots.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(roots)
}

fn default_days() -> u32 {
    365
}

/// Every key type found on cards, as the built-in templates allow.
fn default_keys() -> Vec<String> {
    KeyAlgorithm::ALL
        .iter()
        .map(|k| k.config_name().to_string())
        .collect()
}

impl TemplateConfig {
    /// Checks and converts.
    pub fn build(&self) -> Result<Template, crate::Error> {
        let result = (|| -> Result<Template, String> {
            let oid = ObjectIdentifier::from_str(&self.oid)
                .map_err(|e| format!("template {}: bad OID {}: {e}", self.name, self.oid))?;
            let allowed_keys = self
                .allowed_keys
                .iter()
                .map(|k| {
                    k.parse::<KeyAlgorithm>()
                        .map_err(|e| format!("template {}: {e}", self.name))
                })
                .collect::<Result<_, _>>()?;
            let attestation_roots = match &self.attestation_roots {
                None => Vec::new(),
                Some(source) => attestation_roots(source)
                    .map_err(|e| format!("template {}: attestation_roots: {e}", self.name))?,
            };
            let purposes = match &self.extended_key_usage {
                None => None,
                Some(names) if names.is_empty() => {
                    return Err(format!(
                        "template {}: extended_key_usage lists no purpose",
                        self.name
                    ));
                }
                Some(names) => Some(
                    names
                        .iter()
                        .map(|n| purpose(n).map_err(|e| format!("template {}: {e}", self.name)))
                        .collect::<Result<_, _>>()?,
                ),
            };
            Ok(Template {
                oid,
                name: self.name.clone(),
                validity_days: self.validity_days,
                allowed_keys,
                renewals_pend: self.renewals_pend,
                attestation_roots,
                purposes,
            })
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "template",
            reason,
        })
    }
}

impl TemplateRegistry {
    /// The built-in templates: `SmartcardUser` (the sample certificate's template; every key
    /// type found on cards — P-256, P-384, RSA-2048/3072/4096; one year) and
    /// `SmartcardUserApproval` (same, renewals pend).
    pub fn builtin() -> Self {
        let oid = |s: &str| ObjectIdentifier::new_unwrap(s);
        Self {
            templates: vec![
                Template {
                    oid: oid(renewal_codec::sample::SAMPLE_TEMPLATE_OID),
                    name: "SmartcardUser".into(),
                    validity_days: 365,
                    allowed_keys: KeyAlgorithm::ALL.to_vec(),
                    renewals_pend: false,
                    attestation_roots: Vec::new(),
                    purposes: None,
                },
                Template {
                    oid: oid("1.3.6.1.4.1.311.21.8.1234567.7654321.1.2.3.4.101"),
                    name: "SmartcardUserApproval".into(),
                    validity_days: 365,
                    allowed_keys: KeyAlgorithm::ALL.to_vec(),
                    renewals_pend: true,
                    attestation_roots: Vec::new(),
                    purposes: None,
                },
            ],
        }
    }

    /// Templates from a scenario, or the built-in ones when it defines none.
    pub fn from_configs(configs: &[TemplateConfig]) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            if configs.is_empty() {
                return Ok(Self::builtin());
            }
            Ok(Self {
                templates: configs
                    .iter()
                    .map(TemplateConfig::build)
                    .collect::<Result<_, _>>()?,
            })
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "templates",
            reason,
        })
    }

    /// The template a reference names.
    pub fn find(&self, reference: &TemplateRef) -> Option<&Template> {
        self.templates.iter().find(|t| t.matches(reference))
    }

    /// By name or dotted OID (command line).
    pub fn by_text(&self, text: &str) -> Option<&Template> {
        self.find(&TemplateRef::from_user_text(text))
    }

    /// All templates.
    pub fn all(&self) -> &[Template] {
        &self.templates
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn template(purposes: &str) -> Result<Template, crate::Error> {
        let config: TemplateConfig = toml::from_str(&format!(
            "oid = \"1.2.3.4\"\nname = \"T\"\nextended_key_usage = [{purposes}]\n"
        ))
        .unwrap();
        config.build()
    }

    #[test]
    fn a_templates_purposes_are_names_or_oids() {
        let t = template("\"clientAuth\", \"smartcardLogon\", \"1.3.6.1.5.5.7.3.4\"").unwrap();
        assert_eq!(
            t.purposes.unwrap(),
            [
                renewal_codec::cmc::oids::KP_CLIENT_AUTH,
                renewal_codec::cmc::oids::KP_SMARTCARD_LOGON,
                const_oid::db::rfc5280::ID_KP_EMAIL_PROTECTION,
            ]
        );
        let unknown = template("\"clientauth\"").unwrap_err().to_string();
        assert!(
            unknown.contains("unknown purpose \"clientauth\""),
            "{unknown}"
        );
        let none = template("").unwrap_err().to_string();
        assert!(none.contains("lists no purpose"), "{none}");
        let unset: TemplateConfig = toml::from_str("oid = \"1.2.3.4\"\nname = \"T\"\n").unwrap();
        assert_eq!(unset.build().unwrap().purposes, None);
    }
}
