//! Where a request came in: what an audit record and a pending request name, stored as text
//! but handled as a value, so that a misspelt endpoint is a compile error and a pending
//! request's kind cannot be compared against a name that no code writes.

/// The door a request came through.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Endpoint {
    /// EST full CMC (`/.well-known/est/fullcmc`, RFC 7030 §4.3).
    FullCmc,
    /// CMC over HTTP (RFC 5273).
    Cmc,
    /// EST re-enrollment (`simplereenroll`, RFC 7030 §4.2.2).
    SimpleReenroll,
    /// EST initial enrollment (`simpleenroll`): refused, recorded with its reason.
    SimpleEnroll,
    /// MS-WSTEP (CES) `RequestSecurityToken` for a certificate.
    Wstep,
    /// MS-WSTEP `QueryTokenStatus`: collecting a pending request.
    WstepQuery,
    /// CMP over HTTP (RFC 6712).
    Cmp,
    /// The administrative HTTP interface.
    Admin,
    /// The `sim-ca` command line.
    Cli,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::FullCmc,
        Self::Cmc,
        Self::SimpleReenroll,
        Self::SimpleEnroll,
        Self::Wstep,
        Self::WstepQuery,
        Self::Cmp,
        Self::Admin,
        Self::Cli,
    ];

    /// The name stored, logged and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullCmc => "fullcmc",
            Self::Cmc => "cmc",
            Self::SimpleReenroll => "simplereenroll",
            Self::SimpleEnroll => "simpleenroll",
            Self::Wstep => "wstep",
            Self::WstepQuery => "wstep-query",
            Self::Cmp => "cmp",
            Self::Admin => "admin",
            Self::Cli => "cli",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored endpoint name this version does not know (a newer writer, or a tampered row).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UnknownEndpoint(pub String);

impl std::fmt::Display for UnknownEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown endpoint {:?}", self.0)
    }
}

impl std::error::Error for UnknownEndpoint {}

impl std::str::FromStr for Endpoint {
    type Err = UnknownEndpoint;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == name)
            .ok_or_else(|| UnknownEndpoint(name.to_string()))
    }
}

/// Compares with a stored or printed name (`record.endpoint == "cmc"`).
impl PartialEq<str> for Endpoint {
    fn eq(&self, name: &str) -> bool {
        self.as_str() == name
    }
}

impl PartialEq<&str> for Endpoint {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// What a public entry point takes as the endpoint a request came in at: an [`Endpoint`], or
/// its stored name (`"fullcmc"`) for callers that hold one — read here, at the boundary, so
/// that everything behind it handles the value. A name no endpoint has is refused by the
/// caller as a malformed request.
pub trait IntoEndpoint {
    /// The endpoint, or the name that is none.
    fn into_endpoint(self) -> Result<Endpoint, UnknownEndpoint>;
}

impl IntoEndpoint for Endpoint {
    fn into_endpoint(self) -> Result<Endpoint, UnknownEndpoint> {
        Ok(self)
    }
}

impl IntoEndpoint for &str {
    fn into_endpoint(self) -> Result<Endpoint, UnknownEndpoint> {
        self.parse()
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{Endpoint, IntoEndpoint};

    #[test]
    fn every_endpoint_reads_back_from_its_stored_name() {
        for endpoint in Endpoint::ALL {
            assert_eq!(endpoint.as_str().parse::<Endpoint>(), Ok(endpoint));
            assert!(endpoint == endpoint.as_str());
        }
        assert!("fullcmc ".parse::<Endpoint>().is_err());
        assert!("FullCmc".parse::<Endpoint>().is_err());
        assert!(Endpoint::Cmc != "fullcmc");
        assert_eq!("wstep-query".into_endpoint(), Ok(Endpoint::WstepQuery));
        assert!("est".into_endpoint().is_err());
    }
}
