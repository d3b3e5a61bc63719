//! Microsoft certenroll / ADCS structures (MS-WCCE 2.2.2.7; byte layouts verified against the
//! vectors, see `vectors/WIRE-FORMAT.md` §2.3).

use std::str::FromStr;

use der::{
    Decode, Sequence,
    asn1::{BitString, BmpString, Ia5String, ObjectIdentifier, PrintableString},
};
use x509_cert::{
    attr::AttributeTypeAndValue,
    name::{Name, RdnSequence, RelativeDistinguishedName},
};

use super::{asn1::SetOf, oids, pki::BodyPartId, signed_data::Attribute};

/// `szOID_ENROLLMENT_NAME_VALUE_PAIR` value: one `SEQUENCE { name BMPString, value BMPString }`
/// per attribute value (certreq puts `CertificateTemplate` here).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct NameValuePair {
    /// Name, e.g. `CertificateTemplate`.
    pub name: BmpString,
    /// Value, e.g. a template name or dotted OID.
    pub value: BmpString,
}

impl NameValuePair {
    /// Builds a pair from UTF-8 (characters outside the BMP are rejected by `der`).
    pub fn new(name: &str, value: &str) -> der::Result<Self> {
        Ok(Self {
            name: BmpString::from_utf8(name)?,
            value: BmpString::from_utf8(value)?,
        })
    }

    /// The pair as UTF-8 strings.
    pub fn to_strings(&self) -> (String, String) {
        (self.name.to_string(), self.value.to_string())
    }
}

/// `szOID_ENROLLMENT_CSP_PROVIDER`:
/// `SEQUENCE { keySpec INTEGER, cspName BMPString, signature BIT STRING }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CspProvider {
    /// 1 = AT_KEYEXCHANGE, 2 = AT_SIGNATURE.
    pub key_spec: i32,
    /// Provider name.
    pub csp_name: BmpString,
    /// Always empty in practice (`03 01 00`).
    pub signature: BitString,
}

/// `szOID_REQUEST_CLIENT_INFO`:
/// `SEQUENCE { clientId INTEGER, machine UTF8String, user UTF8String, process UTF8String }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ClientInfo {
    /// 5 = certenroll default, 9 = certreq.
    pub client_id: i32,
    /// Machine DNS name.
    pub machine: String,
    /// `DOMAIN\user`.
    pub user: String,
    /// Process name.
    pub process: String,
}

/// `szOID_OS_VERSION` value: IA5String `maj.min.build.platformId`.
pub type OsVersion = Ia5String;

/// `szOID_CMC_ADD_ATTRIBUTES` (MS docs "CMC Attributes"):
/// ```text
/// CmcAddAttributes ::= SEQUENCE {
///     pkiDataReference  BodyPartID,
///     certReferences    SEQUENCE OF BodyPartID,
///     attributes        SET OF Attribute }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CmcAddAttributes {
    /// PKIData the attributes apply to (0 = this one).
    pub pki_data_reference: BodyPartId,
    /// Requests (or, in a response, issued certificates) they apply to.
    pub cert_references: Vec<BodyPartId>,
    /// The attributes, in wire order.
    pub attributes: SetOf<Attribute>,
}

/// `szOID_CERTIFICATE_TEMPLATE` extension value (template v2):
/// `SEQUENCE { templateID OBJECT IDENTIFIER, templateMajorVersion INTEGER OPTIONAL,
/// templateMinorVersion INTEGER OPTIONAL }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertificateTemplateV2 {
    /// The template OID.
    pub template_id: ObjectIdentifier,
    /// Major version.
    pub major_version: Option<u32>,
    /// Minor version.
    pub minor_version: Option<u32>,
}

/// Which certificate template a request or certificate names.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct TemplateRef {
    /// Template OID (21.7 extension, or a `CertificateTemplate` pair holding a dotted OID).
    pub oid: Option<ObjectIdentifier>,
    /// Template name (20.2 extension, or a `CertificateTemplate` pair holding a name).
    pub name: Option<String>,
    /// Template major version (21.7 only).
    pub major_version: Option<u32>,
    /// Template minor version (21.7 only).
    pub minor_version: Option<u32>,
}

impl TemplateRef {
    /// Parses what a user or a `CertificateTemplate` pair says: a dotted OID or a name.
    pub fn from_user_text(text: &str) -> Self {
        match ObjectIdentifier::from_str(text) {
            Ok(oid) => Self {
                oid: Some(oid),
                ..Self::default()
            },
            Err(_) => Self {
                name: Some(text.to_owned()),
                ..Self::default()
            },
        }
    }

    /// The value for a `CertificateTemplate` name/value pair: the OID when known (it is
    /// unambiguous across forests), else the name.
    pub fn pair_value(&self) -> Option<String> {
        self.oid
            .map(|o| o.to_string())
            .or_else(|| self.name.clone())
    }

    /// Whether two references can denote the same template (a shared OID or a shared name).
    pub fn matches(&self, other: &Self) -> bool {
        matches!((self.oid, other.oid), (Some(a), Some(b)) if a == b)
            || matches!((&self.name, &other.name), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
    }

    /// Reads the template extension of a certificate or request: 21.7 (v2) or 20.2 (v1).
    pub fn from_extension(oid: ObjectIdentifier, value: &[u8]) -> Option<Self> {
        if oid == oids::MS_CERTIFICATE_TEMPLATE {
            let v2 = CertificateTemplateV2::from_der(value).ok()?;
            Some(Self {
                oid: Some(v2.template_id),
                name: None,
                major_version: v2.major_version,
                minor_version: v2.minor_version,
            })
        } else if oid == oids::MS_ENROLL_CERTTYPE {
            // The bytes are a BMPString although MS-WCCE's text says UTF8String: accept both.
            let name = BmpString::from_der(value)
                .map(|b| b.to_string())
                .or_else(|_| String::from_der(value))
                .ok()?;
            Some(Self {
                name: Some(name),
                ..Self::default()
            })
        } else {
            None
        }
    }

    /// Merges two partial references (e.g. a v2 extension and a name pair).
    pub fn merge(self, other: Self) -> Self {
        Self {
            oid: self.oid.or(other.oid),
            name: self.name.or(other.name),
            major_version: self.major_version.or(other.major_version),
            minor_version: self.minor_version.or(other.minor_version),
        }
    }
}

impl std::fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.oid, &self.name) {
            (Some(oid), Some(name)) => write!(f, "{name} ({oid})")?,
            (Some(oid), None) => write!(f, "{oid}")?,
            (None, Some(name)) => write!(f, "{name}")?,
            (None, None) => write!(f, "(none)")?,
        }
        if let Some(major) = self.major_version {
            write!(f, " v{major}.{}", self.minor_version.unwrap_or(0))?;
        }
        Ok(())
    }
}

/// The issuer name of a Microsoft "No-Signature" signer: `CN=Dummy Signer` under the RDN type
/// `szOID_RDN_DUMMY_SIGNER` (1.3.6.1.4.1.311.21.9), PrintableString.
pub fn dummy_signer_name() -> der::Result<Name> {
    let value = der::Any::encode_from(&PrintableString::new("Dummy Signer")?)?;
    let atv = AttributeTypeAndValue {
        oid: oids::MS_RDN_DUMMY_SIGNER,
        value,
    };
    let mut rdn = RelativeDistinguishedName::default();
    rdn.insert(atv)?;
    let mut seq = RdnSequence::default();
    seq.push(rdn);
    Name::from_der(&der::Encode::to_der(&seq)?)
}

/// Whether `name` is the Microsoft dummy-signer issuer.
pub fn is_dummy_signer_name(name: &Name) -> bool {
    name.iter().any(|atv| atv.oid == oids::MS_RDN_DUMMY_SIGNER)
}
