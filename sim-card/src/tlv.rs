//! BER-TLV as PIV uses it: one- to three-byte tags, definite lengths up to 65535.

/// Encodes a length (BER definite form).
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => {
            out.push(0x82);
            out.extend_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
        }
    }
}

/// `tag || len || value`.
pub fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    encode_len(value.len(), &mut out);
    out.extend_from_slice(value);
    out
}

/// One parsed element.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Tlv<'a> {
    /// The tag bytes.
    pub tag: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// Splits `input` into TLVs; `None` when malformed.
pub fn parse(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        // Tag: a first byte with low bits 11111 continues while bit 8 is set.
        let mut tag_len = 1;
        if input[0] & 0x1f == 0x1f {
            while *input.get(tag_len)? & 0x80 != 0 {
                tag_len += 1;
            }
            tag_len += 1;
        }
        let tag = input.get(..tag_len)?;
        let rest = &input[tag_len..];
        let (len, header) = match *rest.first()? {
            n @ 0..=0x7f => (usize::from(n), 1),
            0x81 => (usize::from(*rest.get(1)?), 2),
            0x82 => (
                usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
                3,
            ),
            _ => return None,
        };
        let value = rest.get(header..header + len)?;
        out.push(Tlv { tag, value });
        input = &rest[header + len..];
    }
    Some(out)
}

/// The value of the first element with `tag`.
pub fn find<'a>(input: &'a [u8], tag: &[u8]) -> Option<&'a [u8]> {
    parse(input)?
        .into_iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value)
}
