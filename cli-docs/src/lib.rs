//! Man pages and shell completions generated from a binary's own clap definition, so that they
//! cannot drift from the code: each binary calls [`generate_if_asked`] first thing in `main`.
//! With [`ENV`] set to a directory it writes `man/NAME.1` (and `man/NAME-SUB.1` for every
//! subcommand) and `completions/` for bash, zsh and fish there, then exits; `docs/man` and
//! `docs/completions` are that output, checked to be current by the test command
//! (`conformance/tests/cli_docs.rs`; regenerate with `scripts/cli-docs.sh`).
#![forbid(unsafe_code)]

use std::{path::Path, process::ExitCode};

use clap::Command;
use clap_complete::Shell;

/// The environment variable naming the output directory.
pub const ENV: &str = "CARDRENEW_GENERATE_DOCS";

/// Writes the documentation of `command` when [`ENV`] is set (the exit code to return), else
/// `None` and the binary goes on as usual.
pub fn generate_if_asked(command: impl FnOnce() -> Command) -> Option<ExitCode> {
    let dir = std::env::var_os(ENV)?;
    Some(match generate(command(), Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ENV}: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Man pages for the command and each subcommand, and its bash, zsh and fish completions.
pub fn generate(mut command: Command, dir: &Path) -> std::io::Result<()> {
    command.build();
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let name = command.get_name().to_string();
    write_man_pages(&command, &name, &man)?;
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command.clone(), name.clone(), &mut out);
        std::fs::write(completions.join(file), out)?;
    }
    Ok(())
}

/// `NAME.1`, then `NAME-SUB.1` for every visible subcommand, depth first.
fn write_man_pages(command: &Command, page: &str, dir: &Path) -> std::io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone().name(page.to_string())).render(&mut out)?;
    std::fs::write(dir.join(format!("{page}.1")), out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_man_pages(sub, &format!("{page}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
