//! Where the CLI gets the PIN: an environment variable or a file descriptor (automation), or
//! the terminal without echo. Read once, zeroized, never logged.

use std::io::Read;

use zeroize::Zeroizing;

use super::pin::{Pin, PinError, PinRequest, PinSource, StaticPin};

/// The PIN from environment variable `name`, read now.
pub fn from_env(name: &str) -> Result<StaticPin, PinError> {
    let value =
        Zeroizing::new(std::env::var(name).map_err(|_| {
            PinError::Unavailable(format!("environment variable {name} is not set"))
        })?);
    Ok(StaticPin::new(value.trim_end_matches(['\r', '\n'])))
}

/// The PIN from an inherited file descriptor (e.g. `--pin-fd 3 3<pin.txt`), read now.
pub fn from_fd(fd: u32) -> Result<StaticPin, PinError> {
    let path = format!("/proc/self/fd/{fd}");
    let mut file = std::fs::File::open(&path)
        .map_err(|e| PinError::Unavailable(format!("file descriptor {fd}: {e}")))?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| PinError::Unavailable(format!("file descriptor {fd}: {e}")))?;
    let first = text.lines().next().unwrap_or_default();
    Ok(StaticPin::new(first))
}

/// Prompts on the terminal without echo, saying who asks and how many tries are left.
pub struct TerminalPin;

impl PinSource for TerminalPin {
    fn pin(&self, request: &PinRequest) -> Result<Pin, PinError> {
        let tries = request
            .retries_left
            .map(|n| format!(" ({n} tries left)"))
            .unwrap_or_default();
        let prompt = format!("PIN for {}{tries}: ", request.token);
        let pin = Zeroizing::new(
            rpassword::prompt_password(prompt).map_err(|e| PinError::Unavailable(e.to_string()))?,
        );
        if pin.is_empty() {
            return Err(PinError::Cancelled);
        }
        Ok(Pin::new(pin.as_str()))
    }
}
