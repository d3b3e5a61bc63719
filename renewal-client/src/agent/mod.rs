//! `renew agent` / `renew check`: certificates on cards renewed on time without a person
//! running `renew run` — the configuration ([`config`]), the schedule ([`policy`]) and what is
//! remembered between runs ([`state`]). The renewal itself is the same
//! [`crate::client::processor::Renewal`] flow `renew run` drives: the agent decides *when*,
//! never *how*.

pub mod config;
pub mod error;
pub mod policy;
pub mod state;

pub use config::{AgentConfig, Tracked};
pub use error::{AgentError, EntryProblem};
pub use policy::{Policy, RenewBefore};
pub use state::{AgentState, EntryState, Phase};
