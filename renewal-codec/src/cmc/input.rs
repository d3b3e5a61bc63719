//! Turning what a user or peer hands us (DER, PEM, bare base64) into DER, under a size cap, and
//! decoding one complete structure with its trailing-data check.

use der::{Decode, Reader, SliceReader};

use super::error::{CmcError, DerContext, Result};

/// Structural limits on hostile input. The defaults are generous for real messages (the largest
/// third-party vector is 5 KiB; a response with a long chain is ~20 KiB) and small enough that
/// a server cannot be made to allocate much.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Limits {
    /// Maximum input size in bytes (after base64 decoding).
    pub max_bytes: usize,
    /// Maximum SignerInfos in one SignedData.
    pub max_signers: usize,
    /// Maximum certificates in one SignedData.
    pub max_certificates: usize,
    /// Maximum controls in one PKIData / PKIResponse.
    pub max_controls: usize,
    /// Maximum requests in one PKIData.
    pub max_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_signers: 8,
            max_certificates: 32,
            max_controls: 64,
            max_requests: 16,
        }
    }
}

impl Limits {
    /// Fails when `count` exceeds `max`.
    pub(crate) fn check(what: &'static str, count: usize, max: usize) -> Result<()> {
        if count > max {
            return Err(CmcError::TooMany { what, count, max });
        }
        Ok(())
    }
}

/// What the input looked like.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum InputForm {
    /// Binary DER.
    Der,
    /// PEM with this label.
    Pem(String),
    /// Bare base64 (how ADCS and EST hand out PKCS#7).
    Base64,
}

/// Reads DER, PEM or bare base64 (whitespace allowed) into DER, enforcing `limits.max_bytes` on
/// both the raw input and the result.
pub fn to_der(input: &[u8], limits: &Limits) -> Result<(Vec<u8>, InputForm)> {
    // base64 of max_bytes is 4/3 larger, plus line breaks.
    let raw_cap = limits.max_bytes.saturating_mul(3) / 2 + 4096;
    if input.len() > raw_cap {
        return Err(CmcError::TooLarge {
            len: input.len(),
            max: limits.max_bytes,
        });
    }
    let (der, form) = if input.first() == Some(&0x30) {
        (input.to_vec(), InputForm::Der)
    } else {
        let text = std::str::from_utf8(input)
            .map_err(|_| CmcError::Encoding("neither DER nor text (PEM/base64)".into()))?;
        let trimmed = text.trim();
        if let Some(block) = first_pem_block(trimmed) {
            let (label, der) = der::pem::decode_vec(block.as_bytes())
                .map_err(|e| CmcError::Encoding(format!("PEM: {e}")))?;
            (der, InputForm::Pem(label.to_owned()))
        } else {
            let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.is_empty() {
                return Err(CmcError::Encoding("empty input".into()));
            }
            let der = <base64ct::Base64 as base64ct::Encoding>::decode_vec(&compact)
                .map_err(|e| CmcError::Encoding(format!("base64: {e}")))?;
            (der, InputForm::Base64)
        }
    };
    if der.len() > limits.max_bytes {
        return Err(CmcError::TooLarge {
            len: der.len(),
            max: limits.max_bytes,
        });
    }
    Ok((der, form))
}

/// The first PEM block in `text`, from its BEGIN line through its END line. Text before it is
/// explanatory text, which RFC 7468 §2 allows and parsers must not choke on (`openssl pkcs7
/// -print_certs` and `openssl x509 -text` write `subject=...` lines first); text after the END
/// line is not part of the block. `None` when no line starts a PEM block.
fn first_pem_block(text: &str) -> Option<&str> {
    const BEGIN: &str = "-----BEGIN ";
    let start = if text.starts_with(BEGIN) {
        0
    } else {
        text.find(&format!("\n{BEGIN}"))? + 1
    };
    let block = &text[start..];
    let Some(end_line) = block.find("\n-----END ") else {
        return Some(block);
    };
    let after = end_line + "\n-----END ".len();
    let end = block[after..]
        .find("-----")
        .map_or(block.len(), |i| after + i + "-----".len());
    Some(&block[..end])
}

/// Decodes exactly one `T` from `der`: a clean prefix with bytes after it is
/// [`CmcError::TrailingData`], not a generic decode error.
pub fn decode_exact<'a, T: Decode<'a, Error = der::Error>>(
    der: &'a [u8],
    what: &'static str,
) -> Result<T> {
    let mut reader = SliceReader::new(der).malformed(what)?;
    let value = T::decode(&mut reader).malformed(what)?;
    let remaining = usize::try_from(reader.remaining_len()).malformed(what)?;
    if remaining != 0 {
        return Err(CmcError::TrailingData {
            what,
            extra: remaining,
        });
    }
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod pem_tests {
    use super::{InputForm, Limits, to_der};

    const BLOCK: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn explanatory_text_around_a_pem_block_is_ignored() {
        // `openssl pkcs7 -print_certs` writes subject= and issuer= lines before each block.
        let printed =
            format!("subject=O = Example, CN = Bob\nissuer=CN = CA\n\n{BLOCK}\ntrailing words\n");
        let (der, form) = to_der(printed.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(der, vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(form, InputForm::Pem("CERTIFICATE".into()));
        let bare = to_der(BLOCK.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(bare.0, der);
    }

    #[test]
    fn a_begin_inside_a_line_is_not_a_pem_block_and_a_cut_block_is_refused() {
        // Not at a line start: read as base64, which it is not.
        let inline = "text -----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----";
        assert!(to_der(inline.as_bytes(), &Limits::default()).is_err());
        let cut = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n";
        let err = to_der(cut.as_bytes(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("PEM"), "{err}");
    }
}
