//! What can be wrong with the agent's configuration and state, as values: the file and the
//! entry it concerns travel with the failure, so `renew agent` can print them and a test can
//! match on them.

use std::path::PathBuf;

use crate::cmc::InvalidValue;

/// The agent's configuration or state could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML, or a value in it is refused (the message
    /// carries the line and column).
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The configuration file.
        path: PathBuf,
        /// The reader's message, with line, column and the offending text.
        message: String,
    },
    /// The state file is not what the agent writes.
    #[error("{}: {source}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// The JSON reader's error.
        source: serde_json::Error,
    },
    /// An entry (`[[certificate]]`) that cannot be used as written.
    #[error("{problem}")]
    Entry {
        /// The entry's `name`.
        name: String,
        /// What is wrong with it.
        problem: EntryProblem,
    },
    /// A value in an entry is refused.
    #[error("{name}: {source}")]
    Value {
        /// The entry's `name`.
        name: String,
        /// The value and what the field takes.
        source: InvalidValue,
    },
    /// No `state_dir` and no `HOME` to put the default under.
    #[error("HOME is not set; set state_dir")]
    NoHome,
}

/// What is wrong with one `[[certificate]]` entry.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    /// The name is empty or has characters other than letters, digits, `-`, `_` and `.`
    /// (it names files).
    #[error("certificate name {0:?}: use letters, digits, '-', '_' and '.'")]
    BadName(String),
    /// Two entries share a name.
    #[error("certificate name {0:?} is used twice")]
    UsedTwice(String),
    /// Neither or both of `ca` and `cep`.
    #[error("{0}: give the CA as `ca` or its policy service as `cep` (one of them)")]
    CaOrCep(String),
    /// Both `pin_env` and `pin_file`.
    #[error("{0}: pin_env and pin_file are exclusive")]
    TwoPinSources(String),
}
