//! What the agent knows about each tracked certificate between runs (`agent-state.json` in the
//! state directory), written atomically (temporary file, fsync, rename): a crash leaves the old
//! state or the new one, never half of one. The card and the journal stay the truth about the
//! renewal itself; this file holds the schedule and the last outcome.

use std::{collections::BTreeMap, io::Write, path::Path};

use serde::{Deserialize, Serialize};

use super::error::AgentError;

/// Where an entry stands.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Not due yet.
    #[default]
    Monitoring,
    /// Due: renewing at the next pass.
    Due,
    /// A renewal is running (or was, when the agent died: the journal is recovered).
    Renewing,
    /// The CA has not decided; collected at `next_action`.
    Pending,
    /// The CA was unreachable or the attempt failed; retried at `next_action`.
    Backoff,
    /// The CA refused; the current certificate is kept; retried at `next_action`.
    Stuck,
    /// The token could not be opened (card absent, reader missing).
    CardAbsent,
}

impl Phase {
    /// The name `status` prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Monitoring => "monitoring",
            Self::Due => "due",
            Self::Renewing => "renewing",
            Self::Pending => "pending",
            Self::Backoff => "backoff",
            Self::Stuck => "stuck",
            Self::CardAbsent => "card absent",
        }
    }
}

/// One tracked certificate's state.
#[derive(Clone, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub struct EntryState {
    /// Where it stands.
    pub phase: Phase,
    /// Serial of the certificate in the container (hex).
    pub serial: Option<String>,
    /// Its notAfter (Unix seconds).
    pub not_after: Option<i64>,
    /// When the agent acts next (Unix seconds).
    pub next_action: Option<i64>,
    /// The last error (the CA's reason when stuck).
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// When it was last looked at (Unix seconds): a clock that went backwards is noticed.
    pub last_check: Option<i64>,
    /// The card refused the PIN: never retried automatically (it would burn the card's tries);
    /// `renew check --retry` after fixing the PIN source.
    #[serde(default)]
    pub pin_refused: bool,
    /// The smallest expiry-warning threshold (seconds) already warned about for this
    /// certificate: each threshold warns once.
    #[serde(default)]
    pub warned: Option<u64>,
}

/// Every entry, by name.
#[derive(Clone, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// Entries by name.
    pub entries: BTreeMap<String, EntryState>,
}

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "agent-state.json";

impl AgentState {
    /// Reads `dir/agent-state.json`; an absent file is an empty state.
    pub fn load(dir: &Path) -> Result<Self, AgentError> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| AgentError::State { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(AgentError::Io { path, source }),
        }
    }

    /// Writes `dir/agent-state.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), AgentError> {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|source| AgentError::State {
            path: path.clone(),
            source,
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|source| AgentError::Io { path, source })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_save_and_load_and_starts_empty() {
        let dir =
            std::env::temp_dir().join(format!("cardrenew-agent-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(AgentState::load(&dir).unwrap(), AgentState::default());
        let mut state = AgentState::default();
        state.entries.insert(
            "alice".into(),
            EntryState {
                phase: Phase::Stuck,
                last_error: Some("the CA refused (badRequest)".into()),
                failures: 2,
                next_action: Some(1_800_000_000),
                ..EntryState::default()
            },
        );
        state.save(&dir).unwrap();
        assert_eq!(AgentState::load(&dir).unwrap(), state);
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(text.contains("\"stuck\""), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
