//! A bounded, namespace-resolved XML tree for SOAP envelopes. Everything from the network is
//! hostile: the input size, the nesting depth and the element count are capped, a DTD
//! (`<!DOCTYPE`, where entity bombs live) is refused outright, and only the five predefined
//! entities and character references are expanded (quick-xml refuses others).

use quick_xml::{
    events::{BytesStart, Event},
    name::ResolveResult,
    reader::NsReader,
};

use super::WstepError;

/// Caps on what an envelope may be.
#[derive(Clone, Copy, Debug)]
pub struct XmlLimits {
    /// Bytes.
    pub max_bytes: usize,
    /// Element nesting.
    pub max_depth: usize,
    /// Elements in all.
    pub max_elements: usize,
}

impl Default for XmlLimits {
    /// An envelope holds one request or response of at most 256 KiB of base64 (the CMC size
    /// cap), a few dozen elements, nesting under ten deep (the deepest MS-WSTEP path,
    /// Envelope/Body/RSTRC/RSTR/RequestedSecurityToken/BinarySecurityToken, is six).
    fn default() -> Self {
        Self {
            max_bytes: 512 * 1024,
            max_depth: 16,
            max_elements: 256,
        }
    }
}

/// One element: namespace, local name, attributes (local name, value) and its text.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Element {
    /// Namespace URI ("" when unbound).
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Attributes: an unprefixed one by its local name, a namespaced one as `{ns}local`
    /// (`{http://www.w3.org/2003/05/soap-envelope}mustUnderstand`), so that a look-up never
    /// confuses two namespaces.
    pub attributes: Vec<(String, String)>,
    /// Concatenated text content (trimmed).
    pub text: String,
    /// Child elements, in order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name` in namespace `ns`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.ns == ns && c.name == name)
    }

    /// The first descendant (depth first) named `name` in `ns`.
    pub fn find(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.ns == ns && c.name == name {
                Some(c)
            } else {
                c.find(ns, name)
            }
        })
    }

    /// An attribute's value by local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn namespace(ns: ResolveResult<'_>) -> Result<String, WstepError> {
    match ns {
        ResolveResult::Bound(n) => Ok(String::from_utf8_lossy(n.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(WstepError::Xml(format!(
            "undeclared namespace prefix {:?}",
            String::from_utf8_lossy(&p)
        ))),
    }
}

fn start<R>(reader: &NsReader<R>, ns: String, e: &BytesStart<'_>) -> Result<Element, WstepError> {
    let decoder = reader.decoder();
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| WstepError::Xml(e.to_string()))?;
        let local = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let key = if attr.key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
            local
        } else {
            match reader.resolve_attribute(attr.key).0 {
                ResolveResult::Bound(n) => {
                    format!("{{{}}}{local}", String::from_utf8_lossy(n.as_ref()))
                }
                ResolveResult::Unbound => local,
                ResolveResult::Unknown(p) => {
                    return Err(WstepError::Xml(format!(
                        "undeclared namespace prefix {:?}",
                        String::from_utf8_lossy(&p)
                    )));
                }
            }
        };
        let value = attr
            .decode_and_unescape_value(decoder)
            .map_err(|e| WstepError::Xml(e.to_string()))?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        ns,
        name,
        attributes,
        ..Element::default()
    })
}

/// Parses `input` into its root element under `limits`.
pub fn parse(input: &[u8], limits: &XmlLimits) -> Result<Element, WstepError> {
    if input.len() > limits.max_bytes {
        return Err(WstepError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let mut reader = NsReader::from_reader(input);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Element> = Vec::new();
    let mut elements = 0usize;
    let mut buf = Vec::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| WstepError::Xml(e.to_string()))?;
        let ns = match &event {
            Event::Start(_) | Event::Empty(_) => namespace(ns)?,
            _ => String::new(),
        };
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                elements += 1;
                if elements > limits.max_elements {
                    return Err(WstepError::Xml(format!(
                        "more than {} elements",
                        limits.max_elements
                    )));
                }
                if stack.len() >= limits.max_depth {
                    return Err(WstepError::Xml(format!(
                        "nested deeper than {}",
                        limits.max_depth
                    )));
                }
                let element = start(&reader, ns, &e)?;
                if empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return nothing_after(&mut reader, &mut buf, element),
                    }
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| WstepError::Xml("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return nothing_after(&mut reader, &mut buf, done),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| WstepError::Xml(e.to_string()))?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(text.trim());
                }
            }
            Event::CData(c) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::DocType(_) => {
                return Err(WstepError::Xml(
                    "a DTD is not accepted (no entity definitions)".into(),
                ));
            }
            Event::Eof => return Err(WstepError::Xml("truncated document".into())),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        buf.clear();
    }
}

/// The root element, once nothing but what XML allows after it (white space, comments,
/// processing instructions) follows: a second element or text after the envelope is refused,
/// not silently dropped.
fn nothing_after(
    reader: &mut NsReader<&[u8]>,
    buf: &mut Vec<u8>,
    root: Element,
) -> Result<Element, WstepError> {
    loop {
        buf.clear();
        match reader
            .read_event_into(buf)
            .map_err(|e| WstepError::Xml(e.to_string()))?
        {
            Event::Eof => return Ok(root),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
            _ => {
                return Err(WstepError::Xml(
                    "content after the root element (one envelope per message)".into(),
                ));
            }
        }
    }
}

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_resolve_and_limits_hold() {
        let doc = br#"<s:E xmlns:s="urn:s"><B xmlns="urn:b" k="v&amp;w">a &lt; b</B><s:C/></s:E>"#;
        let root = parse(doc, &XmlLimits::default()).unwrap();
        assert_eq!((root.ns.as_str(), root.name.as_str()), ("urn:s", "E"));
        let b = root.child("urn:b", "B").unwrap();
        assert_eq!(b.text, "a < b");
        assert_eq!(b.attribute("k"), Some("v&w"));
        assert!(root.child("urn:s", "C").is_some());

        let deep = "<a>".repeat(20) + &"</a>".repeat(20);
        assert!(parse(deep.as_bytes(), &XmlLimits::default()).is_err());
        let bomb = br#"<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>"#;
        let err = parse(bomb, &XmlLimits::default()).unwrap_err().to_string();
        assert!(err.contains("DTD"), "{err}");
        assert!(parse(b"<x>&unknown;</x>", &XmlLimits::default()).is_err());
        assert!(parse(b"<x><y></x>", &XmlLimits::default()).is_err());
        assert!(parse(b"<x>", &XmlLimits::default()).is_err());
        assert!(parse(b"<p:x/>", &XmlLimits::default()).is_err());
    }
}
