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
        let pin = Zeroizing::new(rpassword::prompt_password(prompt).map_err(|e| {
            // ENXIO: no controlling terminal (a service, a pipeline, cron).
            if e.raw_os_error() == Some(6) {
                PinError::Unavailable(
                    "no PIN source was given and there is no terminal to ask on (use \
                     --pin-env, --pin-fd, --pin-file or --pinentry)"
                        .into(),
                )
            } else {
                PinError::Unavailable(format!("reading the PIN on the terminal: {e}"))
            }
        })?);
        if pin.is_empty() {
            return Err(PinError::Cancelled);
        }
        Ok(Pin::new(pin.as_str()))
    }
}

/// The PIN from the first line of `path`, read now. The file must not be readable or writable
/// by group or others (mode 0600 or stricter): a PIN file anyone can read is refused, not used.
pub fn from_file(path: &std::path::Path) -> Result<StaticPin, PinError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| PinError::Unavailable(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(PinError::Unavailable(format!(
                "{}: mode {:o} lets others read the PIN; chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| PinError::Unavailable(format!("{}: {e}", path.display())))?,
    );
    Ok(StaticPin::new(text.lines().next().unwrap_or_default()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_pin_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("cardrenew-pin-{}", std::process::id()));
        std::fs::write(&path, "123456\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = from_file(&path).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pin = from_file(&path).unwrap();
        let request = PinRequest {
            token: "test".into(),
            retries_left: None,
            context: crate::token::PinContext::Card,
        };
        assert_eq!(pin.pin(&request).unwrap().as_bytes(), b"123456");
        std::fs::remove_file(&path).unwrap();
    }
}
