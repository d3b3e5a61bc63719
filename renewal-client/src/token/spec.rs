//! The `--token` argument every command takes, parsed once: `renew` and the conformance runner
//! must agree on what `pkcs11:/path/module.so:Label` means.

use std::path::PathBuf;

/// Which token a command works on.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum TokenSpec {
    /// `sim:CARD.json`: the virtual card, in-process, its state in a JSON file.
    Sim(PathBuf),
    /// `piv-pcsc[:READER]`: a PIV card in the first PC/SC reader whose name contains READER
    /// (any reader with a card when absent).
    PivPcsc(Option<String>),
    /// `pkcs11:MODULE[:LABEL]`: a PKCS#11 module, the token labelled LABEL (the first token
    /// when absent). A module path holds no `:` on the systems we target.
    Pkcs11 {
        /// The module (shared library) path.
        module: PathBuf,
        /// The token label.
        label: Option<String>,
    },
}

impl TokenSpec {
    /// Whether the token is the in-process virtual card.
    pub fn is_sim(&self) -> bool {
        matches!(self, Self::Sim(_))
    }
}

impl std::str::FromStr for TokenSpec {
    type Err = crate::cmc::InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_empty = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        let bad = |expected: &str| crate::cmc::InvalidValue::new("token", text, expected);
        if let Some(path) = text.strip_prefix("sim:") {
            return not_empty(path)
                .map(|p| Self::Sim(p.into()))
                .ok_or_else(|| bad("sim: needs the card's state file, e.g. sim:card.json"));
        }
        if let Some(rest) = text.strip_prefix("piv-pcsc") {
            return match rest.strip_prefix(':') {
                Some(reader) => Ok(Self::PivPcsc(not_empty(reader))),
                None if rest.is_empty() => Ok(Self::PivPcsc(None)),
                None => Err(bad("piv-pcsc or piv-pcsc:READER")),
            };
        }
        if let Some(rest) = text.strip_prefix("pkcs11:") {
            let (module, label) = match rest.split_once(':') {
                Some((m, l)) => (m, not_empty(l)),
                None => (rest, None),
            };
            return not_empty(module)
                .map(|m| Self::Pkcs11 {
                    module: m.into(),
                    label,
                })
                .ok_or_else(|| bad("pkcs11: needs the module's path"));
        }
        Err(bad("sim:FILE, piv-pcsc[:READER] or pkcs11:MODULE[:LABEL]"))
    }
}

#[cfg(test)]
mod tests {
    use super::TokenSpec;

    #[test]
    fn every_form_parses_and_nonsense_is_refused() {
        let parse = |s: &str| s.parse::<TokenSpec>();
        assert_eq!(
            parse("sim:card.json"),
            Ok(TokenSpec::Sim("card.json".into()))
        );
        assert_eq!(parse("piv-pcsc"), Ok(TokenSpec::PivPcsc(None)));
        assert_eq!(parse("piv-pcsc:"), Ok(TokenSpec::PivPcsc(None)));
        assert_eq!(
            parse("piv-pcsc:Yubico YubiKey"),
            Ok(TokenSpec::PivPcsc(Some("Yubico YubiKey".into())))
        );
        assert_eq!(
            parse("pkcs11:/usr/lib/softhsm/libsofthsm2.so:My Token"),
            Ok(TokenSpec::Pkcs11 {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                label: Some("My Token".into())
            })
        );
        assert_eq!(
            parse("pkcs11:/m.so"),
            Ok(TokenSpec::Pkcs11 {
                module: "/m.so".into(),
                label: None
            })
        );
        for bad in ["sim:", "pkcs11:", "piv-pcscx", "card.json", ""] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
