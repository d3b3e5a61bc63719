//! A name as RFC 4514 text, exactly as x509-cert's `Display` writes it, without its cost.
//!
//! x509-cert finds an attribute type's short name by walking const-oid's whole name database
//! (thousands of entries) for every attribute of every name it prints: 53 µs per renewal on
//! the CA, 1.5 % of a simplereenroll, for a subject that is stored and audited as text. Here the
//! common attribute types' keys are learnt once — from x509-cert's own output, so they are its
//! keys — and anything else (another attribute type, a value that is not a string) is written
//! by x509-cert itself. A property test holds the two to the same text.

use std::{fmt::Write, sync::OnceLock};

use const_oid::{
    ObjectIdentifier,
    db::{rfc3280, rfc4519},
};
use der::{
    Tag, Tagged,
    asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef},
};
use x509_cert::{
    attr::AttributeTypeAndValue,
    name::{Name, RdnSequence, RelativeDistinguishedName},
};

/// The attribute types of the names seen in practice (RFC 4519's, and PKCS #9's e-mail).
const COMMON: [ObjectIdentifier; 16] = [
    rfc4519::CN,
    rfc4519::O,
    rfc4519::OU,
    rfc4519::C,
    rfc4519::L,
    rfc4519::ST,
    rfc4519::STREET,
    rfc4519::DC,
    rfc4519::UID,
    rfc4519::SN,
    rfc4519::GN,
    rfc4519::INITIALS,
    rfc4519::TITLE,
    rfc4519::SERIAL_NUMBER,
    rfc4519::POSTAL_CODE,
    rfc3280::EMAIL_ADDRESS,
];

/// Each common type with the key x509-cert writes for it (`None`: it writes the OID).
fn keys() -> &'static [(ObjectIdentifier, Option<String>)] {
    static KEYS: OnceLock<Vec<(ObjectIdentifier, Option<String>)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        COMMON
            .iter()
            .map(|oid| {
                let probe = der::asn1::PrintableStringRef::new("x")
                    .ok()
                    .and_then(|v| der::asn1::Any::encode_from(&v).ok())
                    .map(|value| AttributeTypeAndValue { oid: *oid, value }.to_string());
                let key = probe
                    .and_then(|text| text.strip_suffix("=x").map(str::to_string))
                    .filter(|key| !key.starts_with(|c: char| c.is_ascii_digit()));
                (*oid, key)
            })
            .collect()
    })
}

/// The key x509-cert writes for `oid`, when it is a common type with one.
fn key_of(oid: &ObjectIdentifier) -> Option<&'static str> {
    keys()
        .iter()
        .find(|(common, _)| common == oid)
        .and_then(|(_, key)| key.as_deref())
}

/// A value's text when x509-cert writes it as text (the four string types it reads).
fn string_value(value: &der::asn1::Any) -> Option<&str> {
    match value.tag() {
        Tag::PrintableString => PrintableStringRef::try_from(value).ok().map(|s| s.as_str()),
        Tag::Utf8String => Utf8StringRef::try_from(value).ok().map(|s| s.as_str()),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok().map(|s| s.as_str()),
        Tag::TeletexString => TeletexStringRef::try_from(value).ok().map(|s| s.as_str()),
        _ => None,
    }
}

/// `value` escaped as RFC 4514 §2.4 asks: a leading `#`, a leading or trailing space, the
/// special characters, and control characters as `\` and two hex digits.
fn push_escaped(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x00'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\{:02x}", c as u8);
            }
            _ => out.push(c),
        }
    }
}

/// One attribute, `KEY=value`.
fn push_attribute(out: &mut String, atv: &AttributeTypeAndValue) {
    match (key_of(&atv.oid), string_value(&atv.value)) {
        (Some(key), Some(value)) => {
            out.push_str(key);
            out.push('=');
            push_escaped(out, value);
        }
        // A rare type or a value that is not a string: as x509-cert writes it.
        _ => {
            let _ = write!(out, "{atv}");
        }
    }
}

/// `name` as RFC 4514 text (the last RDN first), the same text as `name.to_string()`.
pub fn name_text(name: &Name) -> String {
    let mut out = String::with_capacity(64);
    let sequence: &RdnSequence = name.as_ref();
    let rdns: &Vec<RelativeDistinguishedName> = sequence.as_ref();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.as_ref().iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_attribute(&mut out, atv);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{Any, BmpString, SetOfVec};
    use der::{Decode, Encode};
    use proptest::prelude::*;

    fn value(kind: u8, text: &str) -> Option<Any> {
        match kind {
            0 => Any::encode_from(&PrintableStringRef::new(text).ok()?).ok(),
            1 => Any::encode_from(&Utf8StringRef::new(text).ok()?).ok(),
            2 => Any::encode_from(&Ia5StringRef::new(text).ok()?).ok(),
            3 => Any::encode_from(&TeletexStringRef::new(text).ok()?).ok(),
            _ => Any::encode_from(&BmpString::from_utf8(text).ok()?).ok(),
        }
    }

    /// Attribute types: the common ones, a rare one x509-cert knows, one it does not.
    fn oid() -> impl Strategy<Value = ObjectIdentifier> {
        let mut all: Vec<ObjectIdentifier> = COMMON.to_vec();
        all.push(rfc4519::DN_QUALIFIER);
        all.push(ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.60.2.1.3"));
        all.push(ObjectIdentifier::new_unwrap("1.2.3.4.5"));
        proptest::sample::select(all)
    }

    fn text() -> impl Strategy<Value = String> {
        // Few letters, so that the characters RFC 4514 escapes come often, in every place.
        proptest::string::string_regex("[ #aZ0=+,;<>\"\\\\.\\-'()/:?\u{0}\u{1f}\u{7f}é漢]{0,8}")
            .expect("a valid pattern")
    }

    fn name() -> impl Strategy<Value = Name> {
        let atv = (oid(), 0u8..5, text());
        let rdn = proptest::collection::vec(atv, 1..3);
        proptest::collection::vec(rdn, 0..5).prop_map(|rdns| {
            let rdns: Vec<RelativeDistinguishedName> = rdns
                .into_iter()
                .filter_map(|atvs| {
                    let atvs: Vec<AttributeTypeAndValue> = atvs
                        .into_iter()
                        .filter_map(|(oid, kind, text)| {
                            Some(AttributeTypeAndValue {
                                oid,
                                value: value(kind, &text)?,
                            })
                        })
                        .collect();
                    let set = SetOfVec::try_from(atvs).ok()?;
                    (!set.is_empty()).then_some(RelativeDistinguishedName::from(set))
                })
                .collect();
            let der = RdnSequence::from(rdns).to_der().expect("an encodable name");
            Name::from_der(&der).expect("a name decodes")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn the_text_is_x509_certs(name in name()) {
            prop_assert_eq!(name_text(&name), name.to_string());
        }
    }

    #[test]
    fn a_card_holders_name_reads_as_rfc_4514_writes_it() {
        let name: Name = "CN=Smith\\, John,OU=Sales,O=Example,C=DE"
            .parse()
            .expect("an RFC 4514 name");
        assert_eq!(name_text(&name), name.to_string());
        assert_eq!(name_text(&name), "CN=Smith\\, John,OU=Sales,O=Example,C=DE");
        assert!(keys().iter().all(|(_, key)| key.is_some()), "{:?}", keys());
    }
}
