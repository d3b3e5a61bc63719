//! Running the card behind real middleware: a foreground `pcscd` owned by the caller (stopped
//! on drop) and the card served to its vpcd driver from a thread. Tests and the conformance
//! runner use this; so can anyone wanting the card in their own tools.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{PivApplet, vpcd::VpcdCard};

/// Where pcscd listens.
pub const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";
/// The vpcd reader the first virtual card appears in, when a pcscd this harness did not start
/// serves it (Debian's `/etc/reader.conf.d/vpcd` names it).
pub const VPCD_READER: &str = "Virtual PCD 00 00";
/// The same reader in a pcscd the harness starts: named as a YubiKey 5's reader is, since
/// Yubico's tools (ykcs11, `ykman list`) look only at readers whose name says "Yubico".
pub const YUBIKEY_READER: &str = "Yubico YubiKey OTP+FIDO+CCID 00 00";
/// What the harness's pcscd is told about vpcd (`reader.conf` syntax): the reader's name and
/// the driver's TCP port (0x8C7B = 35963).
const VPCD_READER_CONF: &str = "FRIENDLYNAME \"Yubico YubiKey OTP+FIDO+CCID\"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID 0x8C7B\n";
/// vpcd's TCP port for that reader.
pub const VPCD_ADDR: &str = "127.0.0.1:35963";
/// The ports vpcd listens on (its two readers: 35963 and the next). A test server that takes
/// one of them with an ephemeral bind leaves pcscd's vpcd unable to start ("Address already in
/// use"); tests pick ports outside this range.
pub const VPCD_PORTS: std::ops::RangeInclusive<u16> = 35963..=35964;
/// How many times [`Pcscd::start`] starts pcscd before giving up on vpcd.
const START_ATTEMPTS: usize = 3;

/// Why pcscd with vpcd's reader could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The reader configuration could not be written.
    #[error("cannot write pcscd's reader configuration in {}: {source}", dir.display())]
    Config {
        /// The configuration directory.
        dir: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The lock through which processes take turns at pcscd could not be opened or taken.
    #[error("cannot take a turn at pcscd through {}: {source}", path.display())]
    Turn {
        /// The lock file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// `pcscd` could not be run (not installed?).
    #[error("cannot start pcscd: {0}")]
    Spawn(std::io::Error),
    /// pcscd ended before it was ready.
    #[error("pcscd exited at start ({status}){}", said(log))]
    Exited {
        /// How it ended.
        status: std::process::ExitStatus,
        /// Its last lines.
        log: Vec<String>,
    },
    /// pcscd never created its socket.
    #[error("pcscd did not create its socket within 10 s{}", said(log))]
    NoSocket {
        /// Its last lines.
        log: Vec<String>,
    },
    /// pcscd runs but its vpcd driver is not listening.
    #[error(
        "vpcd is not listening on 35963 (is vsmartcard-vpcd installed?); sockets on its ports: {}{}",
        if sockets.is_empty() { "none".to_string() } else { sockets.join(", ") },
        said(log)
    )]
    VpcdNotListening {
        /// The kernel's sockets on vpcd's port (local -> remote, state in hex).
        sockets: Vec<String>,
        /// pcscd's last lines.
        log: Vec<String>,
    },
    /// Every attempt failed.
    #[error("pcscd with vpcd did not come up in {} attempts: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    GaveUp(Vec<HarnessError>),
}

/// pcscd's last lines, for an error message.
fn said(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("; pcscd said: {}", log.join(" | "))
    }
}

/// A pcscd this process started (`None` inside when one was already running), and this
/// process's turn at the machine's one pcscd.
pub struct Pcscd {
    /// Dropped first (fields drop in order): the daemon is stopped before the turn ends.
    daemon: Daemon,
    /// The machine has one pcscd socket and one pair of vpcd ports: two tests serving cards
    /// at once reset each other's cards. Test runners that run tests in processes of their
    /// own, several at a time (cargo-nextest), would interleave them; this lock, held until
    /// the handle drops (after the daemon is stopped), makes them take turns.
    _turn: std::fs::File,
}

/// A pcscd started here (stopped and its configuration removed on drop), or none.
struct Daemon {
    child: Option<Child>,
    config: Option<std::path::PathBuf>,
}

/// Where the processes that start pcscd take turns (see [`Pcscd`]).
fn turn_lock_path() -> std::path::PathBuf {
    std::env::temp_dir().join("cardrenew-pcscd.lock")
}

/// Waits for this process's turn at pcscd.
fn take_turn() -> Result<std::fs::File, HarnessError> {
    let path = turn_lock_path();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .and_then(|file| file.lock().map(|()| file));
    file.map_err(|source| HarnessError::Turn { path, source })
}

impl Pcscd {
    /// Starts `pcscd -f` unless one already runs, and waits for its socket. The pcscd it
    /// starts reads its own reader configuration: vpcd's reader named as a YubiKey's
    /// ([`YUBIKEY_READER`]).
    pub fn start() -> Result<Self, HarnessError> {
        let turn = take_turn()?;
        if pcscd_running() {
            return Ok(Self {
                daemon: Daemon {
                    child: None,
                    config: None,
                },
                _turn: turn,
            });
        }
        // vpcd binds its port once, when pcscd loads it, and never retries: a port still held
        // (TIME_WAIT from a pcscd stopped moments ago, which we wait out, or anything we cannot
        // see) leaves a pcscd without the reader. Such a start is stopped and made again.
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::start_once() {
                Ok(daemon) => {
                    return Ok(Self {
                        daemon,
                        _turn: turn,
                    });
                }
                Err(e) => failures.push(e),
            }
        }
        Err(HarnessError::GaveUp(failures))
    }

    fn start_once() -> Result<Daemon, HarnessError> {
        let _ = std::fs::remove_file(PCSCD_SOCKET);
        // A pcscd stopped moments ago (another test) closed vpcd's port first, which leaves
        // it in TIME_WAIT for up to a minute; vpcd cannot listen on it until then and does
        // not retry. Start pcscd once the port is clear.
        wait_for_vpcd_port_to_clear(Duration::from_secs(75));
        let config = std::env::temp_dir().join(format!("cardrenew-pcscd-{}", std::process::id()));
        // Beside the configuration directory, not in it: pcscd reads every file there as a
        // reader.conf.
        let log = config.with_extension("log");
        let written = std::fs::create_dir_all(&config)
            .and_then(|()| std::fs::write(config.join("vpcd"), VPCD_READER_CONF))
            .and_then(|()| std::fs::File::create(&log));
        let log_file = written.map_err(|source| HarnessError::Config {
            dir: config.clone(),
            source,
        })?;
        let child = Command::new("pcscd")
            .arg("-f")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(HarnessError::Spawn)?;
        let mut me = Daemon {
            child: Some(child),
            config: Some(config),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(PCSCD_SOCKET).exists() {
            if let Some(Ok(Some(status))) = me.child.as_mut().map(Child::try_wait) {
                return Err(HarnessError::Exited {
                    status,
                    log: log_tail(&log),
                });
            }
            if Instant::now() > deadline {
                return Err(HarnessError::NoSocket {
                    log: log_tail(&log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // vpcd opens its TCP ports when pcscd loads the driver, just after the socket.
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(VPCD_ADDR).is_err() {
            if Instant::now() > deadline {
                return Err(HarnessError::VpcdNotListening {
                    sockets: vpcd_port_sockets(),
                    log: log_tail(&log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    /// Whether this handle owns the daemon.
    pub fn owned(&self) -> bool {
        self.daemon.child.is_some()
    }

    /// The name of the reader the served card appears in: [`YUBIKEY_READER`] in a pcscd this
    /// harness started (this handle or another), else what the running pcscd's vpcd
    /// configuration names it ([`VPCD_READER`] with Debian's).
    pub fn reader(&self) -> String {
        if self.owned() {
            return YUBIKEY_READER.to_string();
        }
        running_vpcd_reader().unwrap_or_else(|| VPCD_READER.to_string())
    }
}

/// The vpcd reader's name in the running pcscd, from the configuration it was started with
/// (`-c DIR`, else `/etc/reader.conf.d`): its `FRIENDLYNAME` and pcscd's " 00 00" suffix.
fn running_vpcd_reader() -> Option<String> {
    let config_dir = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let program = args.first()?;
            if !program.ends_with("pcscd") {
                return None;
            }
            let dir = args
                .iter()
                .position(|a| a == "-c" || a == "--config")
                .and_then(|i| args.get(i + 1))
                .map_or_else(|| "/etc/reader.conf.d".to_string(), Clone::clone);
            Some(std::path::PathBuf::from(dir))
        })?;
    let conf = std::fs::read_to_string(config_dir.join("vpcd")).ok()?;
    let name = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("FRIENDLYNAME"))?
        .trim()
        .trim_matches('"');
    Some(format!("{name} 00 00"))
}

/// Waits (at most `limit`) until no TCP socket on this machine holds vpcd's ports 35963 and
/// 35964 (in `/proc/net/tcp` and `tcp6`: local port `8C7B` or `8C7C`, any state).
fn wait_for_vpcd_port_to_clear(limit: Duration) {
    let deadline = Instant::now() + limit;
    while !vpcd_port_sockets().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The kernel's lines for sockets whose local port is one of vpcd's (state in hex: 0A
/// listening, 06 TIME_WAIT...).
fn vpcd_port_sockets() -> Vec<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter(|line| {
                    line.split_whitespace()
                        .nth(1)
                        .is_some_and(|local| local.ends_with(":8C7B") || local.ends_with(":8C7C"))
                })
                .map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    format!(
                        "{} -> {} state {}",
                        fields.get(1).unwrap_or(&"?"),
                        fields.get(2).unwrap_or(&"?"),
                        fields.get(3).unwrap_or(&"?")
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The last lines pcscd wrote (its errors name a driver that failed to load), for an error.
fn log_tail(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[lines.len().saturating_sub(8)..].to_vec()
}

fn pcscd_running() -> bool {
    std::os::unix::net::UnixStream::connect(PCSCD_SOCKET).is_ok()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(config) = self.config.take() {
            let _ = std::fs::remove_file(config.with_extension("log"));
            let _ = std::fs::remove_dir_all(config);
        }
    }
}

/// A card served to vpcd from a background thread until dropped.
pub struct ServedCard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    live: Arc<std::sync::Mutex<Option<std::net::TcpStream>>>,
}

impl ServedCard {
    /// Serves `applet` (saving to `state_file` when given) to vpcd.
    pub fn start(applet: PivApplet, state_file: Option<std::path::PathBuf>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let live = Arc::new(std::sync::Mutex::new(None));
        let handle = Arc::clone(&live);
        let thread = std::thread::spawn(move || {
            let mut card = VpcdCard::new(applet, state_file);
            crate::vpcd::serve_with(
                &mut card,
                VPCD_ADDR,
                || flag.load(Ordering::SeqCst),
                &handle,
            );
        });
        Self {
            stop,
            thread: Some(thread),
            live,
        }
    }
}

impl Drop for ServedCard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Close the connection from this side: the card leaves the reader, the serving thread
        // ends, and the TIME_WAIT lands on this side's port rather than on vpcd's.
        if let Ok(mut live) = self.live.lock()
            && let Some(stream) = live.take()
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        // The serving thread leaves when the connection ends; it is detached otherwise,
        // holding nothing but the card.
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn while_one_process_has_its_turn_at_pcscd_no_other_gets_one() {
        let mine = take_turn().unwrap();
        // Another process opens the lock file on its own: a description of its own, as here.
        let theirs = std::fs::OpenOptions::new()
            .write(true)
            .open(turn_lock_path())
            .unwrap();
        assert!(matches!(
            theirs.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(mine);
    }
}
