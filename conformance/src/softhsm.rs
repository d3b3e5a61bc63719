//! A private SoftHSM2 token directory for tests and interop runs: SoftHSM2 reads
//! `SOFTHSM2_CONF` at module initialisation, so each run gets its own configuration and token
//! store instead of touching the machine's.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Where Debian installs the SoftHSM2 PKCS#11 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Whether `softhsm2-util` and the module are installed.
pub fn available() -> bool {
    let util = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("softhsm2-util").is_file()));
    util && Path::new(MODULE).exists()
}

/// A fresh token directory with one initialised token.
pub struct PrivateToken {
    /// The directory (removed by the caller when done).
    pub dir: PathBuf,
    /// The configuration file to pass as `SOFTHSM2_CONF`.
    pub conf: PathBuf,
}

impl PrivateToken {
    /// Creates `$TMP/cardrenew-<tag>-<pid>` with a token labelled `label` (SO PIN 12345678,
    /// user PIN `user_pin`).
    pub fn init(tag: &str, label: &str, user_pin: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("cardrenew-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).map_err(|e| e.to_string())?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}/tokens/\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                "12345678",
                "--pin",
                user_pin,
            ])
            .output()
            .map_err(|e| format!("softhsm2-util: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "softhsm2-util: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Self { dir, conf })
    }
}
