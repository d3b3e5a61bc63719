//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod suite;

/// Retries `f` for up to 10 s (the virtual card appears in pcscd's reader list after a poll).
pub fn retry<T, E: std::fmt::Debug>(mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() > deadline => panic!("gave up: {e:?}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}
