//! The PIN from a **pinentry** program (the GnuPG family: `pinentry-tty`, `pinentry-curses`,
//! `pinentry-gnome3`, ...), spoken to over the Assuan protocol on its stdin/stdout: a person at
//! a desktop is asked in the dialog they know, with a description of which certificate is
//! being renewed. One program run per request; the PIN is never cached here.
//!
//! Protocol (Assuan): the program greets with `OK`; we send `OPTION`s, `SETTITLE`, `SETDESC`,
//! `SETPROMPT`, optionally `SETERROR`, then `GETPIN`; it answers `D <pin>` (percent-escaped)
//! and `OK`, or `ERR <code> <text>` when the user cancels. Every line we send is
//! percent-escaped (`%`, CR, LF), so a description cannot inject a command.

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Command, Stdio},
};

use zeroize::Zeroizing;

use super::pin::{Pin, PinError, PinRequest, PinSource};

/// Asks through a pinentry program.
#[derive(Clone, Debug)]
pub struct Pinentry {
    /// The program (e.g. `/usr/bin/pinentry-tty`).
    pub program: PathBuf,
    /// What is being done, shown above the prompt (e.g. "Renewing certificate alice ...").
    pub description: String,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(text: &str) -> Result<Zeroizing<String>, PinError> {
    let bytes = text.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PinError::Unavailable("pinentry sent a malformed escape".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| PinError::Unavailable("pinentry sent a PIN that is not UTF-8".into()))
}

impl Pinentry {
    fn converse(&self, request: &PinRequest) -> Result<Pin, PinError> {
        let unavailable = |e: std::io::Error| {
            PinError::Unavailable(format!("pinentry {}: {e}", self.program.display()))
        };
        let mut child = Command::new(&self.program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(unavailable)?;
        let result = (|| {
            let mut input = child
                .stdin
                .take()
                .ok_or_else(|| PinError::Unavailable("pinentry: no stdin".into()))?;
            let mut output = BufReader::new(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| PinError::Unavailable("pinentry: no stdout".into()))?,
            );
            let mut line = Zeroizing::new(String::new());
            let mut read_reply =
                |line: &mut Zeroizing<String>| -> Result<Option<Zeroizing<String>>, PinError> {
                    // Data lines, comments and status lines until OK or ERR.
                    let mut data = None;
                    loop {
                        line.clear();
                        if output.read_line(line).map_err(unavailable)? == 0 {
                            return Err(PinError::Unavailable(
                                "pinentry closed the connection".into(),
                            ));
                        }
                        let text = line.trim_end_matches(['\r', '\n']);
                        if text == "OK" || text.starts_with("OK ") {
                            return Ok(data);
                        }
                        if let Some(err) = text.strip_prefix("ERR ") {
                            // 83886179 (GPG_ERR_CANCELED) and friends: the person said no.
                            return Err(if err.contains("cancel") || err.starts_with("83886179") {
                                PinError::Cancelled
                            } else {
                                PinError::Unavailable(format!("pinentry: {err}"))
                            });
                        }
                        if let Some(d) = text.strip_prefix("D ") {
                            data = Some(unescape(d)?);
                        }
                    }
                };
            read_reply(&mut line)?; // the greeting
            let tries = request
                .retries_left
                .map(|n| format!(" ({n} tries left)"))
                .unwrap_or_default();
            let mut commands = vec![
                "SETTITLE cardrenew".to_string(),
                format!(
                    "SETDESC {}",
                    escape(&format!(
                        "{}\n\nToken: {}{tries}",
                        self.description, request.token
                    ))
                ),
                "SETPROMPT PIN:".to_string(),
            ];
            if let Ok(tty) = std::env::var("GPG_TTY") {
                commands.insert(0, format!("OPTION ttyname={}", escape(&tty)));
            }
            for command in commands {
                writeln!(input, "{command}").map_err(unavailable)?;
                input.flush().map_err(unavailable)?;
                read_reply(&mut line)?;
            }
            writeln!(input, "GETPIN").map_err(unavailable)?;
            input.flush().map_err(unavailable)?;
            let pin = read_reply(&mut line)?.ok_or(PinError::Cancelled)?;
            let _ = writeln!(input, "BYE");
            if pin.is_empty() {
                return Err(PinError::Cancelled);
            }
            Ok(Pin::new(pin.as_str()))
        })();
        let _ = child.kill();
        let _ = child.wait();
        result
    }
}

impl PinSource for Pinentry {
    fn pin(&self, request: &PinRequest) -> Result<Pin, PinError> {
        self.converse(request)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_commands_on_one_line() {
        let text = "50% of\nthe card\r";
        let escaped = escape(text);
        assert!(!escaped.contains('\n') && !escaped.contains('\r'));
        assert_eq!(unescape(&escaped).unwrap().as_str(), text);
        assert!(unescape("%4").is_err());
    }

    #[cfg(unix)]
    fn fake(dir: &std::path::Path, answer: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("pinentry-fake");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho 'OK Pleased to meet you'\nwhile read -r cmd rest; do\n  echo \"$cmd $rest\" >> \"{log}\"\n  case \"$cmd\" in\n    GETPIN) {answer} ;;\n    BYE) echo OK; exit 0 ;;\n    *) echo OK ;;\n  esac\ndone\n",
                log = dir.join("log").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn a_pinentry_is_asked_with_the_description_and_its_answer_is_the_pin() {
        let dir = std::env::temp_dir().join(format!("cardrenew-pinentry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let request = PinRequest {
            context: crate::token::PinContext::Card,
            token: "PIV card 1234".into(),
            retries_left: Some(3),
        };
        let entry = Pinentry {
            program: fake(&dir, "echo 'D 12%2534'; echo OK"),
            description: "Renewing certificate alice (container 9a)".into(),
        };
        assert_eq!(entry.pin(&request).unwrap().as_bytes(), b"12%34");
        let log = std::fs::read_to_string(dir.join("log")).unwrap();
        assert!(
            log.contains("SETDESC Renewing certificate alice (container 9a)%0A%0AToken: PIV card 1234 (3 tries left)"),
            "{log}"
        );
        assert!(log.contains("GETPIN"), "{log}");

        let cancelled = Pinentry {
            program: fake(&dir, "echo 'ERR 83886179 Operation cancelled <Pinentry>'"),
            description: "x".into(),
        };
        assert!(matches!(cancelled.pin(&request), Err(PinError::Cancelled)));
        let missing = Pinentry {
            program: dir.join("no-such-pinentry"),
            description: "x".into(),
        };
        assert!(matches!(
            missing.pin(&request),
            Err(PinError::Unavailable(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
