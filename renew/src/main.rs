//! `renew`: the cardrenew client CLI.
//!
//! Exit codes: 0 success (renewed, or nothing to do); 1 the input, a file or the configuration
//! is unusable (the message says which and why); 2 command-line usage error; 3 the request is
//! pending at the CA (run `renew resume` later); 4 rolled back: the CA refused or something
//! failed, the card is as before; 5 the card failed mid-way and could not be cleaned up: run
//! `renew recover` when it is back.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use cli::{AgentAction, Cli, Command};

mod agent;
mod cli;
mod offline;
mod renewal;
mod token;

fn main() -> ExitCode {
    if let Some(code) = cli_docs::generate_if_asked(<Cli as clap::CommandFactory>::command) {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            common,
            ca,
            cep,
            ca_cert,
            mode,
            template,
            max_polls,
        } => renewal::run(
            &common,
            ca.as_deref(),
            cep.as_deref(),
            &ca_cert,
            &mode,
            template.as_deref(),
            max_polls,
        ),
        Command::Policy {
            common,
            cep,
            ca_cert,
        } => renewal::policy(&common, &cep, &ca_cert),
        Command::Resume {
            common,
            ca,
            ca_cert,
            max_polls,
        } => renewal::resume(&common, &ca, &ca_cert, max_polls),
        Command::Recover { common } => renewal::recover(&common),
        Command::Status { common } => renewal::status(&common),
        Command::Check {
            config,
            now,
            retry,
            abort_after,
        } => {
            agent::init_logging();
            if let Some(kind) = abort_after {
                agent::abort_after(kind);
            }
            agent::check(&config, now.as_deref(), retry)
        }
        Command::Agent {
            action: Some(AgentAction::Status { config, json }),
            ..
        } => agent::status(&config, json),
        Command::Agent {
            config: Some(config),
            now,
            action: None,
        } => {
            agent::init_logging();
            agent::run(&config, now.as_deref())
        }
        Command::Agent { .. } => {
            Err("renew agent needs --config FILE (or: renew agent status --config FILE)".into())
        }
        other => offline::run(other).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("renew: {message}");
            ExitCode::from(1)
        }
    }
}
