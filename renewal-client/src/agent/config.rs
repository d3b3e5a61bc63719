//! The agent's configuration file (TOML): what to track and how.
//!
//! ```toml
//! state_dir = "/var/lib/cardrenew"        # default: ~/.cardrenew/agent
//!
//! [[certificate]]
//! name = "alice-piv-auth"                  # unique; names the state, journal and hooks
//! token = "piv-pcsc:Yubico"                # sim:CARD.json | piv-pcsc[:READER] | pkcs11:MODULE[:LABEL]
//! container = "9a"                         # each container is tracked on its own entry
//! card_serial = "12345678"                 # optional: only this card (another one is "absent")
//! ca = "https://ca.example:8443"
//! ca_cert = "ca-chain.pem"                 # relative paths are relative to this file
//! mode = "fullcmc"                         # fullcmc | cmc | simplereenroll | wstep | cmp
//! renew_before = "1/3"                     # or "14d", "33%"
//! pin_file = "/etc/cardrenew/alice.pin"    # mode 0600 or stricter; or pin_env = "VAR",
//!                                          # or pinentry = "/usr/bin/pinentry-gnome3"
//! post_renew = ["/usr/bin/systemctl", "reload", "vpn"]
//! on_failure = ["/usr/local/bin/notify", "renewal failed"]
//! ```

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer};

use super::{
    error::{AgentError, EntryProblem},
    policy::{Policy, RenewBefore, parse_duration},
};
use crate::{client::Mode, cmc::InvalidValue, token::piv::ManagementKey};

/// Parses a value with its `FromStr` when the file is read: a bad one is reported with its
/// line and column (by the TOML reader), not when a renewal falls due weeks later.
fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn parsed_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    parsed(d).map(Some)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| parse_duration(t))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn management_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ManagementKey>, D::Error> {
    let text = zeroize::Zeroizing::new(String::deserialize(d)?);
    ManagementKey::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the agent keeps its state, journals and issued certificates.
    pub state_dir: Option<PathBuf>,
    /// The tracked certificates.
    #[serde(rename = "certificate", default)]
    pub certificates: Vec<Tracked>,
}

/// One tracked certificate: a container on a token, renewed at a CA.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracked {
    /// Unique name.
    pub name: String,
    /// Token spec (as `renew run --token`).
    pub token: String,
    /// Container (PIV slot or PKCS#11 id).
    #[serde(default = "default_container")]
    pub container: String,
    /// The card's serial number: another card in the reader is treated as absent (never
    /// renewed into, never asked for its PIN).
    pub card_serial: Option<String>,
    /// CA base URL (for `mode = "wstep"`: the CES URL). Exclusive with `cep`.
    pub ca: Option<String>,
    /// An MS-XCEP policy service: when a renewal is due, the enrollment service and template
    /// come from its policy (over the card's TLS, in the renewal's one login), and the renewal
    /// goes over MS-WSTEP. Exclusive with `ca`.
    pub cep: Option<String>,
    /// CA certificates to trust (PEM bundle).
    pub ca_cert: PathBuf,
    /// `fullcmc`, `cmc`, `simplereenroll` or `wstep` (ignored with `cep`: always `wstep`).
    #[serde(default = "default_mode", deserialize_with = "parsed")]
    pub mode: Mode,
    /// Template to ask for (default: the certificate's).
    pub template: Option<String>,
    /// When to renew (default one third of the lifetime before expiry).
    #[serde(default, deserialize_with = "parsed_opt")]
    pub renew_before: Option<RenewBefore>,
    /// Certificates younger than this are left alone (default 1h).
    #[serde(default, deserialize_with = "duration")]
    pub min_age: Option<Duration>,
    /// First retry delay after a failure (default 60s).
    #[serde(default, deserialize_with = "duration")]
    pub retry_min: Option<Duration>,
    /// Longest retry delay (default 6h).
    #[serde(default, deserialize_with = "duration")]
    pub retry_max: Option<Duration>,
    /// Environment variable holding the PIN.
    pub pin_env: Option<String>,
    /// File holding the PIN (first line); must not be readable by group or others.
    pub pin_file: Option<PathBuf>,
    /// A pinentry program to ask a person at the desktop (when neither `pin_env` nor
    /// `pin_file` is set); without any of the three, the terminal is used.
    pub pinentry: Option<PathBuf>,
    /// PIV management key: hex of any algorithm's length, `pin-protected` or `auto` (as
    /// `renew --management-key`).
    #[serde(default, deserialize_with = "management_key")]
    pub management_key: Option<ManagementKey>,
    /// Attach the card's attestation of the new key (as `renew --attest`), for a CA that
    /// renews only keys proven generated on the card.
    #[serde(default)]
    pub attest: bool,
    /// With `mode = "cmp"`: ask the CA to skip `certConf` (as `renew --implicit-confirm`).
    #[serde(default)]
    pub implicit_confirm: bool,
    /// Polls of a pending request within one attempt.
    #[serde(default = "default_polls")]
    pub max_polls: u32,
    /// Re-sends of the same request within one attempt when its answer is lost (dropped,
    /// timed out, truncated, HTTP 5xx) before the attempt rolls back (default 4).
    #[serde(default = "default_resends")]
    pub resends: u32,
    /// Command (argv, no shell) run after a renewal.
    #[serde(default)]
    pub post_renew: Vec<String>,
    /// Command (argv, no shell) run after a failed attempt.
    #[serde(default)]
    pub on_failure: Vec<String>,
    /// Warn (log, and `on_warning`) when the remaining validity falls below each of these
    /// (default 28d, 7d, 1d, as certmonger).
    #[serde(default, deserialize_with = "durations")]
    pub warn_before: Option<Vec<Duration>>,
    /// Command (argv, no shell) run at each expiry warning.
    #[serde(default)]
    pub on_warning: Vec<String>,
}

fn default_container() -> String {
    "9a".into()
}

fn default_mode() -> Mode {
    Mode::FullCmc
}

fn default_polls() -> u32 {
    0
}

fn default_resends() -> u32 {
    4
}

impl AgentConfig {
    /// Reads and checks the file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| AgentError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(dir) = config.state_dir.as_mut() {
            resolve(dir);
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &mut config.certificates {
            resolve(&mut t.ca_cert);
            if let Some(p) = t.pin_file.as_mut() {
                resolve(p);
            }
            if let Some(rest) = t.token.strip_prefix("sim:") {
                let mut p = PathBuf::from(rest);
                resolve(&mut p);
                t.token = format!("sim:{}", p.display());
            }
            if t.name.is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(t.problem(EntryProblem::BadName(t.name.clone())));
            }
            if !names.insert(t.name.clone()) {
                return Err(t.problem(EntryProblem::UsedTwice(t.name.clone())));
            }
            if t.ca.is_some() == t.cep.is_some() {
                return Err(t.problem(EntryProblem::CaOrCep(t.name.clone())));
            }
            if t.pin_env.is_some() && t.pin_file.is_some() {
                return Err(t.problem(EntryProblem::TwoPinSources(t.name.clone())));
            }
            t.policy()?;
        }
        Ok(config)
    }

    /// The state directory (default `~/.cardrenew/agent`).
    pub fn state_dir(&self) -> Result<PathBuf, AgentError> {
        match &self.state_dir {
            Some(d) => Ok(d.clone()),
            None => {
                let home = std::env::var_os("HOME").ok_or(AgentError::NoHome)?;
                Ok(Path::new(&home).join(".cardrenew").join("agent"))
            }
        }
    }
}

impl Tracked {
    fn problem(&self, problem: EntryProblem) -> AgentError {
        AgentError::Entry {
            name: self.name.clone(),
            problem,
        }
    }

    /// Where renewals go, for messages: the CA or the policy service.
    pub fn endpoint(&self) -> &str {
        self.ca
            .as_deref()
            .or(self.cep.as_deref())
            .unwrap_or_default()
    }

    /// The expiry-warning thresholds, largest first.
    pub fn warnings(&self) -> Vec<Duration> {
        let mut out = self.warn_before.clone().unwrap_or_else(|| {
            vec![
                Duration::from_secs(28 * 86_400),
                Duration::from_secs(7 * 86_400),
                Duration::from_secs(86_400),
            ]
        });
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    /// The policy this entry asks for.
    pub fn policy(&self) -> Result<Policy, AgentError> {
        let mut policy = Policy::default();
        if let Some(renew_before) = self.renew_before {
            policy.renew_before = renew_before;
        }
        for (value, slot) in [
            (self.min_age, &mut policy.min_age),
            (self.retry_min, &mut policy.retry_min),
            (self.retry_max, &mut policy.retry_max),
        ] {
            if let Some(value) = value {
                *slot = value;
            }
        }
        if policy.retry_min.is_zero() || policy.retry_max < policy.retry_min {
            return Err(AgentError::Value {
                name: self.name.clone(),
                source: InvalidValue::new(
                    "retry_min/retry_max",
                    &format!(
                        "{}s/{}s",
                        policy.retry_min.as_secs(),
                        policy.retry_max.as_secs()
                    ),
                    "need 0 < retry_min <= retry_max",
                ),
            });
        }
        Ok(policy)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cardrenew-agent-config-{}-{}",
            std::process::id(),
            super::super::policy::unit_hash(text, 0).to_bits()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_config_loads_with_defaults_and_paths_relative_to_the_file() {
        let path = write(
            r#"
[[certificate]]
name = "alice"
token = "sim:card.json"
ca = "https://ca:8443"
ca_cert = "chain.pem"
renew_before = "14d"
post_renew = ["/bin/true"]
"#,
        );
        let config = AgentConfig::load(&path).unwrap();
        let t = &config.certificates[0];
        let dir = path.parent().unwrap();
        assert_eq!(t.ca_cert, dir.join("chain.pem"));
        assert_eq!(t.token, format!("sim:{}", dir.join("card.json").display()));
        assert_eq!((t.container.as_str(), t.mode), ("9a", Mode::FullCmc));
        assert_eq!(
            t.policy().unwrap().renew_before,
            RenewBefore::Duration(std::time::Duration::from_secs(14 * 86_400))
        );
    }

    #[test]
    fn every_mode_the_client_speaks_is_a_mode_the_agent_takes() {
        for (text, mode) in [
            ("fullcmc", Mode::FullCmc),
            ("cmc", Mode::Cmc),
            ("simplereenroll", Mode::SimpleReenroll),
            ("wstep", Mode::Wstep),
            ("cmp", Mode::Cmp),
        ] {
            let path = write(&format!(
                "[[certificate]]\nname = \"a\"\ntoken = \"sim:card.json\"\nca = \"https://ca\"\n\
                 ca_cert = \"chain.pem\"\nmode = \"{text}\"\n"
            ));
            assert_eq!(AgentConfig::load(&path).unwrap().certificates[0].mode, mode);
        }
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let base = "token = \"sim:c\"\nca = \"https://x\"\nca_cert = \"c.pem\"\n";
        for (extra, why) in [
            ("name = \"a b\"\n", "use letters"),
            ("name = \"a\"\nrenew_before = \"2/1\"\n", "renew_before"),
            (
                "name = \"a\"\npin_env = \"P\"\npin_file = \"p\"\n",
                "exclusive",
            ),
            ("name = \"a\"\nbogus = 1\n", "unknown field"),
            ("name = \"a\"\nretry_min = \"0s\"\n", "retry_min"),
        ] {
            let path = write(&format!("[[certificate]]\n{extra}{base}"));
            let e = AgentConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains(why), "{extra:?}: {e}");
        }
        // A bad value of a typed field is reported with its line when the file is read —
        // not weeks later, when the renewal falls due.
        for (line4, why) in [
            ("mode = \"fulcmc\"", "fulcmc"),
            ("renew_before = \"2/1\"", "renew_before"),
            ("retry_max = \"6 hours\"", "6 hours"),
            ("management_key = \"0102\"", "hex digits"),
            ("warn_before = [\"7d\", \"soon\"]", "soon"),
        ] {
            let path = write(&format!("[[certificate]]\nname = \"a\"\n{base}{line4}\n"));
            let e = AgentConfig::load(&path).unwrap_err();
            assert!(matches!(e, AgentError::Syntax { .. }), "{line4}: {e:?}");
            let e = e.to_string();
            assert!(e.contains("line 6") && e.contains(why), "{line4}: {e}");
        }
        // Syntax and unknown fields are reported with the line.
        let path = write(&format!("[[certificate]]\nname = \"a\"\n{base}bogus = 1\n"));
        let e = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 6"), "{e}");
        let twice =
            format!("[[certificate]]\nname = \"a\"\n{base}[[certificate]]\nname = \"a\"\n{base}");
        assert!(matches!(
            AgentConfig::load(&write(&twice)),
            Err(AgentError::Entry { problem: EntryProblem::UsedTwice(name), .. }) if name == "a"
        ));
        // The entry's problems are values a caller can match, not sentences.
        let both =
            format!("[[certificate]]\nname = \"b\"\npin_env = \"P\"\npin_file = \"p\"\n{base}");
        assert!(matches!(
            AgentConfig::load(&write(&both)),
            Err(AgentError::Entry { problem: EntryProblem::TwoPinSources(_), name }) if name == "b"
        ));
        let zero = format!("[[certificate]]\nname = \"c\"\nretry_min = \"0s\"\n{base}");
        assert!(matches!(
            AgentConfig::load(&write(&zero)),
            Err(AgentError::Value { name, source }) if name == "c" && source.what == "retry_min/retry_max"
        ));
    }
}
