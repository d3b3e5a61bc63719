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
/// The vpcd reader the first virtual card appears in.
pub const VPCD_READER: &str = "Virtual PCD 00 00";
/// vpcd's TCP port for that reader.
pub const VPCD_ADDR: &str = "127.0.0.1:35963";

/// A pcscd this process started (`None` inside when one was already running).
pub struct Pcscd {
    child: Option<Child>,
}

impl Pcscd {
    /// Starts `pcscd -f` unless one already runs, and waits for its socket.
    pub fn start() -> Result<Self, String> {
        if pcscd_running() {
            return Ok(Self { child: None });
        }
        let _ = std::fs::remove_file(PCSCD_SOCKET);
        let child = Command::new("pcscd")
            .arg("-f")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start pcscd: {e}"))?;
        let mut me = Self { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(PCSCD_SOCKET).exists() {
            if let Some(Ok(Some(status))) = me.child.as_mut().map(Child::try_wait) {
                return Err(format!("pcscd exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err("pcscd did not create its socket within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // vpcd opens its TCP ports when pcscd loads the driver, just after the socket.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(VPCD_ADDR).is_err() {
            if Instant::now() > deadline {
                return Err(
                    "vpcd is not listening on 35963 (is vsmartcard-vpcd installed?)".into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    /// Whether this handle owns the daemon.
    pub fn owned(&self) -> bool {
        self.child.is_some()
    }
}

fn pcscd_running() -> bool {
    std::os::unix::net::UnixStream::connect(PCSCD_SOCKET).is_ok()
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A card served to vpcd from a background thread until dropped.
pub struct ServedCard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServedCard {
    /// Serves `applet` (saving to `state_file` when given) to vpcd.
    pub fn start(applet: PivApplet, state_file: Option<std::path::PathBuf>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut card = VpcdCard::new(applet, state_file);
            crate::vpcd::serve(&mut card, VPCD_ADDR, || flag.load(Ordering::SeqCst));
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ServedCard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The serving thread leaves when vpcd drops the connection (pcscd stopped); it is
        // detached otherwise, holding nothing but the card.
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}
