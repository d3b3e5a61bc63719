//! The load's server processes: `sim-ca serve` (the CA or a gateway) as a child process, and
//! what `/proc` says about it (CPU, resident memory, descriptors).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// `sim-ca serve` as a child process (killed on drop).
pub(super) struct Server {
    pub(super) binary: PathBuf,
    /// The arguments of `sim-ca`.
    pub(super) args: Vec<String>,
    pub(super) port: u16,
    pub(super) admin_port: u16,
    pub(super) child: Option<Child>,
    /// CPU ticks of the server lives that ended.
    pub(super) cpu_ticks: u64,
    /// fsyncs of the lives that ended; `None` once one could not be read.
    pub(super) fsyncs: Option<u64>,
}

/// USER_HZ: the unit of `/proc/PID/stat` CPU times (100 on Linux, whatever the kernel's HZ).
const USER_HZ: u64 = 100;

/// User + system CPU ticks of process `pid` (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// What a process holds: resident memory (KiB, `VmRSS` of `/proc/PID/status`) and open file
/// descriptors (entries of `/proc/PID/fd`).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Footprint {
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Open descriptors.
    pub fds: usize,
}

impl Footprint {
    /// The larger of each figure.
    pub fn max(self, other: Self) -> Self {
        Self {
            rss_kib: self.rss_kib.max(other.rss_kib),
            fds: self.fds.max(other.fds),
        }
    }
}

/// The footprint of process `pid`, when it can be read.
pub fn footprint(pid: u32) -> Option<Footprint> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Footprint { rss_kib, fds })
}

pub(super) fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / USER_HZ)
}

impl Server {
    /// The running life's footprint.
    pub(super) fn footprint(&self) -> Option<Footprint> {
        footprint(self.child.as_ref()?.id())
    }

    pub(super) fn start(&mut self) -> Result<(), String> {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("sim-ca serve did not start listening within 20 s".into())
    }

    /// `/admin/metrics` of the running server: its fsyncs so far.
    fn read_fsyncs(&self) -> Option<u64> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /admin/metrics HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let body = response.split_once("\r\n\r\n")?.1;
        serde_json::from_str::<serde_json::Value>(body).ok()?["fsyncs"].as_u64()
    }

    /// Adds the running life's CPU and fsyncs to the totals (just before it is killed).
    fn account(&mut self) {
        let Some(child) = &self.child else { return };
        let fsyncs = self.read_fsyncs();
        self.cpu_ticks += cpu_ticks(&child.id().to_string()).unwrap_or(0);
        self.fsyncs = self.fsyncs.zip(fsyncs).map(|(a, b)| a + b);
    }

    /// CPU ticks of every life so far, the running one included.
    pub(super) fn ticks_now(&self) -> u64 {
        let running = self.child.as_ref();
        self.cpu_ticks
            + running
                .and_then(|c| cpu_ticks(&c.id().to_string()))
                .unwrap_or(0)
    }

    pub(super) fn kill(&mut self) {
        self.account();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port, never one of vpcd's (a pcscd started later could not serve cards).
pub(super) fn free_port() -> Result<u16, String> {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        if !sim_card::harness::VPCD_PORTS.contains(&port) {
            return Ok(port);
        }
    }
}
