//! What the workspace's integration tests share, so that each test file says what it tests and
//! not how to start a process. A dev-dependency only: nothing here ships.
//!
//! The rule for external tools is the project's: under `CI=true` a missing tool fails the test
//! loudly; elsewhere the test prints `SKIP: <why>` and passes without checking anything.
#![forbid(unsafe_code)]

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

/// Whether this run is CI's (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A fresh, empty directory under the system's temporary directory, unique to this process
/// and call (a counter, not only the clock: parallel tests can call it in the same tick).
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cardrenew-{tag}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// For a test binary without libtest's harness (`harness = false`, one test: the whole
/// `main`): whether this call only asks for the list of tests, as cargo-nextest does before it
/// runs anything (`--list --format terse`, once more with `--ignored`). The list (`name: test`,
/// nothing ignored) is printed here; the caller then returns without running. Any other call
/// (cargo test's, or nextest's run of `name`) is a run.
pub fn answered_test_listing(name: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--list") {
        return false;
    }
    if !args.iter().any(|a| a == "--ignored") {
        println!("{name}: test");
    }
    true
}

/// Where `tool` is on `PATH`, or in `/usr/sbin` (where Debian puts daemons such as pcscd).
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .or_else(|| Some(Path::new("/usr/sbin").join(tool)).filter(|p| p.is_file()))
}

/// Whether every tool is installed. Under `CI=true` a missing one panics; elsewhere the test
/// prints why it skips and gets `false`.
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !in_ci(),
        "{missing:?} required under CI=true but not installed (scripts/test.sh installs them)"
    );
    eprintln!("SKIP: {missing:?} not installed; run scripts/test.sh to install");
    false
}

/// Whether OpenSSL's `openssl cmp` (client and mock server, OpenSSL 3) is here. Under
/// `CI=true` a missing one panics; elsewhere the test prints why it skips and gets `false`.
pub fn openssl_cmp_present() -> bool {
    let present = Command::new("openssl")
        .args(["cmp", "-help"])
        .output()
        .is_ok_and(|o| {
            let help = String::from_utf8_lossy(&o.stderr);
            help.contains("-newkey") && help.contains("-srv_cert")
        });
    if !present {
        assert!(
            !in_ci(),
            "OpenSSL's cmp command is required under CI=true (Debian openssl)"
        );
        eprintln!("SKIP: openssl cmp is missing");
    }
    present
}

/// Runs `cmd`, which must succeed; its standard output. A failure panics with both outputs.
pub fn run_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`run_bytes`], as text.
pub fn run(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_bytes(cmd)).into_owned()
}

/// Runs `cmd`, which must succeed; its standard output followed by its standard error (for
/// tools that report on either).
pub fn run_combined(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// vsmartcard's vpcd listens on these (its two readers; `sim_card::harness::VPCD_PORTS`): a
/// server on one of them stops the next pcscd's vpcd from starting.
const VPCD_PORTS: std::ops::RangeInclusive<u16> = 35963..=35964;

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS's choice), never one of vpcd's.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        if !VPCD_PORTS.contains(&port) {
            return port;
        }
    }
}

/// Whether something accepts connections on 127.0.0.1:`port` before `limit` runs out.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A workspace binary (`renew`, `sim-ca`, `sim-card`, `conformance`): cargo puts them next to
/// the test's `deps` directory. Another crate's binary is there when `cargo test --workspace`
/// (or `cargo build --workspace --bins`) built it.
pub fn workspace_bin(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .unwrap_or_else(|| panic!("no target directory above {}", exe.display()));
    assert!(
        path.exists(),
        "{} not built (cargo test --workspace --all-features builds it)",
        path.display()
    );
    Command::new(path)
}

/// A server run as a child process for a test: started, waited for until it accepts
/// connections, killed (and reaped) when dropped.
pub struct Served(pub Child);

impl Served {
    /// Spawns `cmd` and waits (at most 60 s: a first start on a loaded 2-core runner can take
    /// seconds; this is a deadline, not a timing check) until 127.0.0.1:`port` accepts. `log`
    /// is where its output goes, named in the panic when it does not come up.
    pub fn spawn(cmd: &mut Command, port: u16, log: &Path) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let mut served = Self(child);
        if !wait_for_port(port, Duration::from_secs(60)) {
            let status = served.0.try_wait().ok().flatten();
            panic!(
                "{cmd:?} did not listen on {port} (exited: {status:?}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        served
    }

    /// [`Served::spawn`] with the output going to `log` (created; `RUST_LOG=info`, standard
    /// output discarded): how the tests run `sim-ca serve`.
    pub fn logged(cmd: &mut Command, port: u16, log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        cmd.env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(file);
        Self::spawn(cmd, port, log)
    }

    /// Kills the process without letting it clean up (SIGKILL), as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The third-party CMC and MS-WSTEP vectors, with their provenance README (the codec crate's).
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../renewal-codec/tests/vectors")
}

/// One vector's bytes.
pub fn vector(name: &str) -> Vec<u8> {
    std::fs::read(vectors_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_panics_with_its_output_and_a_good_one_gives_stdout() {
        assert_eq!(
            run(Command::new("sh").args(["-c", "echo out; echo err >&2"])),
            "out\n"
        );
        assert_eq!(
            run_combined(Command::new("sh").args(["-c", "echo out; echo err >&2"])),
            "out\nerr\n"
        );
        let failed = std::panic::catch_unwind(|| {
            run(Command::new("sh").args(["-c", "echo why >&2; exit 3"]))
        });
        let message = failed
            .err()
            .and_then(|e| e.downcast::<String>().ok())
            .map(|s| *s);
        assert!(message.is_some_and(|m| m.contains("why") && m.contains("exit status: 3")));
    }

    #[test]
    fn free_ports_avoid_vpcd_and_a_listener_is_found() {
        for _ in 0..50 {
            assert!(!VPCD_PORTS.contains(&free_port()));
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        assert!(wait_for_port(port, Duration::from_secs(1)));
        drop(listener);
    }

    #[test]
    fn temp_dirs_are_distinct_and_empty() {
        let (a, b) = (temp_dir("kit"), temp_dir("kit"));
        assert_ne!(a, b);
        assert_eq!(std::fs::read_dir(&a).map(Iterator::count).ok(), Some(0));
        let _ = (std::fs::remove_dir_all(a), std::fs::remove_dir_all(b));
    }

    #[test]
    fn the_vectors_are_found() {
        assert!(vectors_dir().join("README.md").is_file());
    }
}
