//! Scenario files (TOML): templates, policy knobs and an ordered rule list. Rules are evaluated
//! in order, the first whose matcher fits decides the disposition and the transport fault.
//!
//! ```toml
//! grace_days = 0
//! response_style = "v2"            # or "adcs": statusInfo v1 + issued-cert hash
//!
//! [[rule]]
//! subject = "Alice"                # substring of the subject DN (optional)
//! template = "SmartcardUser"       # template name or OID (optional)
//! request = 2                      # the n-th request from that subject (optional)
//! disposition = "pending"          # issue | deny | pending | error | issued-out-of-band | revoked
//! resolve = "poll:2"               # pending: "after:SECONDS" | "poll:N" | "admin"
//! to = "issued"                    # pending: issued | denied
//! fault = "delay:500"              # optional transport fault, see `TransportFault`
//! ```

use serde::Deserialize;

use crate::templates::TemplateConfig;

/// What the CA decides.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Disposition {
    /// Issue the renewal.
    Issue,
    /// Deny, with a reason.
    Deny(String),
    /// Pend; resolve later.
    Pending {
        /// When it resolves on its own.
        resolve: crate::store::Resolve,
        /// To what.
        to: crate::store::PendingEnd,
    },
    /// Fail with an HRESULT (CR_DISP_ERROR).
    Error(u32),
    /// Say "issued out of band" (CR_DISP_ISSUED_OUT_OF_BAND): success, no certificate.
    IssuedOutOfBand,
    /// Issue, then revoke at once (CR_DISP_REVOKED).
    Revoked,
}

/// Misbehaviour of the network or the server, on top of the disposition.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum TransportFault {
    /// Answer after this many milliseconds (real time: it is the network).
    Delay(u64),
    /// Close the connection before reading the request.
    DropBeforeRead,
    /// Read the request (and act on it), then close without answering.
    DropAfterRead,
    /// Answer with this HTTP status and no body.
    Http(u16),
    /// Answer 200 with a body that is not a CMC response.
    MalformedBody,
    /// Answer 200 with `text/html`.
    WrongContentType,
    /// Answer with the first half of the real body.
    Truncated,
    /// Issue a certificate for a different key than the request's.
    WrongKeyCertificate,
    /// Sign the CMC response with a key that is not the CA's.
    WrongSigner,
}

impl TransportFault {
    /// Parses `delay:MS`, `drop-before-read`, `drop-after-read`, `http:CODE`,
    /// `malformed-body`, `wrong-content-type`, `truncated`, `wrong-key-certificate`,
    /// `wrong-signer`.
    pub fn parse(text: &str) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            let (name, arg) = text.split_once(':').unwrap_or((text, ""));
            let number = |a: &str| {
                a.parse::<u64>()
                    .map_err(|_| format!("fault {text:?}: bad number"))
            };
            Ok(match name {
                "delay" => Self::Delay(number(arg)?),
                "drop-before-read" => Self::DropBeforeRead,
                "drop-after-read" => Self::DropAfterRead,
                "http" => {
                    Self::Http(u16::try_from(number(arg)?).map_err(|_| format!("fault {text:?}"))?)
                }
                "malformed-body" => Self::MalformedBody,
                "wrong-content-type" => Self::WrongContentType,
                "truncated" => Self::Truncated,
                "wrong-key-certificate" => Self::WrongKeyCertificate,
                "wrong-signer" => Self::WrongSigner,
                _ => return Err(format!("unknown fault {text:?}")),
            })
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "fault",
            reason,
        })
    }
}

/// A rule as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Subject substring.
    pub subject: Option<String>,
    /// Template name or OID.
    pub template: Option<String>,
    /// n-th request from the subject.
    pub request: Option<u32>,
    /// Disposition name.
    #[serde(default = "default_disposition")]
    pub disposition: String,
    /// Deny reason.
    pub reason: Option<String>,
    /// Error HRESULT.
    pub hresult: Option<u32>,
    /// Pending resolution.
    pub resolve: Option<String>,
    /// Pending outcome.
    pub to: Option<String>,
    /// Transport fault.
    pub fault: Option<String>,
}

fn default_disposition() -> String {
    "issue".into()
}

/// A checked rule.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Rule {
    /// Subject substring.
    pub subject: Option<String>,
    /// Template name or OID.
    pub template: Option<String>,
    /// n-th request from the subject.
    pub request: Option<u32>,
    /// The disposition.
    pub disposition: Disposition,
    /// The fault.
    pub fault: Option<TransportFault>,
}

impl RuleConfig {
    /// Checks and converts.
    pub fn build(&self) -> Result<Rule, crate::Error> {
        let result = (|| -> Result<Rule, String> {
            use crate::store::{PendingEnd, Resolve};
            let disposition = match self.disposition.as_str() {
                "issue" => Disposition::Issue,
                "deny" => Disposition::Deny(
                    self.reason
                        .clone()
                        .unwrap_or_else(|| "denied by policy".into()),
                ),
                "pending" => {
                    let resolve = match self.resolve.as_deref().unwrap_or("admin").split_once(':') {
                        Some(("after", s)) => {
                            Resolve::At(s.parse().map_err(|_| format!("resolve {s:?}"))?)
                        }
                        Some(("poll", n)) => {
                            Resolve::OnPoll(n.parse().map_err(|_| format!("resolve {n:?}"))?)
                        }
                        None if self.resolve.as_deref().unwrap_or("admin") == "admin" => {
                            Resolve::Admin
                        }
                        _ => return Err(format!("bad resolve {:?}", self.resolve)),
                    };
                    let to = match self.to.as_deref().unwrap_or("issued") {
                        "issued" => PendingEnd::Issue,
                        "denied" => PendingEnd::Deny,
                        other => return Err(format!("bad pending outcome {other:?}")),
                    };
                    // `after:N` is relative to submission; the service turns it absolute.
                    Disposition::Pending { resolve, to }
                }
                "error" => Disposition::Error(self.hresult.unwrap_or(0x8000_4005)),
                "issued-out-of-band" => Disposition::IssuedOutOfBand,
                "revoked" => Disposition::Revoked,
                other => return Err(format!("unknown disposition {other:?}")),
            };
            Ok(Rule {
                subject: self.subject.clone(),
                template: self.template.clone(),
                request: self.request,
                disposition,
                fault: self
                    .fault
                    .as_deref()
                    .map(TransportFault::parse)
                    .transpose()?,
            })
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "rule",
            reason,
        })
    }
}

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Days a certificate may still be renewed after it expired.
    #[serde(default)]
    pub grace_days: u32,
    /// "v2" or "adcs".
    #[serde(default)]
    pub response_style: Option<String>,
    /// Which RFC deviations in requests are accepted: `adcs` (default: what ADCS accepts) or
    /// `strict` (none).
    #[serde(default = "adcs_profile")]
    pub profile: renewal_codec::cmc::Profile,
    /// The CA's key when the CA is created: `rsa2048` (default, as ADCS), `rsa3072`,
    /// `rsa4096`, `p256` or `p384`. An existing CA keeps its keys.
    #[serde(default)]
    pub ca_key: Option<String>,
    /// Templates (built-in ones when empty).
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateConfig>,
    /// Rules, in order.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// Open pending requests one certificate may have; a new request beyond is refused
    /// (HTTP 429, CERTSRV_E_ENROLL_DENIED) until one is decided.
    #[serde(default = "pending_cap")]
    pub max_pending_per_identity: u32,
}

fn pending_cap() -> u32 {
    crate::ledger::DEFAULT_PENDING_CAP
}

/// No rules, built-in templates, the `adcs` profile: what an empty scenario file says.
impl Default for Scenario {
    fn default() -> Self {
        Self {
            grace_days: 0,
            response_style: None,
            profile: adcs_profile(),
            ca_key: None,
            templates: Vec::new(),
            rules: Vec::new(),
            max_pending_per_identity: pending_cap(),
        }
    }
}

impl Scenario {
    /// The CA key type to create (RSA-2048 unless `ca_key` says otherwise).
    pub fn ca_key_algorithm(&self) -> Result<renewal_codec::cmc::KeyAlgorithm, crate::Error> {
        match &self.ca_key {
            None => Ok(renewal_codec::cmc::KeyAlgorithm::Rsa2048),
            Some(name) => name
                .parse::<renewal_codec::cmc::KeyAlgorithm>()
                .map_err(|e| crate::Error::Setting {
                    setting: "ca_key",
                    reason: e.to_string(),
                }),
        }
    }

    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            let s: Self = toml::from_str(text).map_err(|e| e.to_string())?;
            for r in &s.rules {
                r.build()?;
            }
            s.ca_key_algorithm()?;
            match s.response_style.as_deref() {
                None | Some("v2") | Some("adcs") => Ok(s),
                Some(other) => Err(format!("unknown response_style {other:?}")),
            }
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "scenario",
            reason,
        })
    }
}

fn adcs_profile() -> renewal_codec::cmc::Profile {
    renewal_codec::cmc::Profile::Adcs
}

#[cfg(test)]
mod default_tests {
    use super::*;

    #[test]
    fn the_default_is_what_an_empty_file_says() {
        let empty = Scenario::from_toml("").expect("an empty scenario parses");
        let default = Scenario::default();
        assert_eq!(default.profile, empty.profile);
        assert_eq!(default.profile, renewal_codec::cmc::Profile::Adcs);
        assert_eq!(default.grace_days, empty.grace_days);
        assert!(default.rules.is_empty() && default.templates.is_empty());
    }
}
