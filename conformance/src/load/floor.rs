//! The server's crypto floor per renewal, measured in this process right after the load, so
//! that the server's CPU per renewal is compared with what the same machine's cryptography
//! costs at the same moment (a VM's speed drifts by tens of per cent over an afternoon).
//!
//! The floor counts only the public-key operations a renewal cannot do without, each timed
//! alone with aws-lc-rs (the library the server uses): for a direct full-CMC renewal, the TLS
//! 1.3 handshake (the server's P-256 signature, one X25519 key generation and agreement, the
//! client certificate's signature by the CA and the client's CertificateVerify), the request's
//! three signatures (the PKCS#10 by the new key, the two CMS signers) and the CA's two
//! signatures (the certificate and the response). Hashing, parsing, the database, the kernel
//! and the allocator are what the server spends above it.

use std::time::{Duration, Instant};

use aws_lc_rs::{
    agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519},
    rand::SystemRandom,
};
use renewal_client::{
    client::Mode,
    cmc::{Signer, SoftwareKey, crypto::verify},
    token::KeyAlgorithm,
};
use sim_ca::authority::Authority;

/// What each operation costs, in CPU time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unit {
    /// A signature by the CA's key.
    pub ca_sign: Duration,
    /// A verification of a CA signature (a certificate's, a response's).
    pub ca_verify: Duration,
    /// A P-256 signature (the server's TLS key, the RA's key).
    pub p256_sign: Duration,
    /// A P-256 verification (the clients' keys, the RA's).
    pub p256_verify: Duration,
    /// An X25519 key generation and agreement (the TLS key exchange, one side).
    pub x25519: Duration,
}

/// How many of each operation one renewal costs one server process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// CA signatures.
    pub ca_sign: u32,
    /// CA-key verifications.
    pub ca_verify: u32,
    /// P-256 signatures.
    pub p256_sign: u32,
    /// P-256 verifications.
    pub p256_verify: u32,
    /// X25519 exchanges (one per TLS handshake the process terminates).
    pub x25519: u32,
}

impl Count {
    /// The TLS 1.3 handshake a server terminates for a client with a certificate: its own
    /// signature, the key exchange, the client certificate's chain (signed by the CA) and the
    /// client's CertificateVerify.
    pub const HANDSHAKE: Self = Self {
        ca_sign: 0,
        ca_verify: 1,
        p256_sign: 1,
        p256_verify: 1,
        x25519: 1,
    };

    fn plus(self, other: Self) -> Self {
        Self {
            ca_sign: self.ca_sign + other.ca_sign,
            ca_verify: self.ca_verify + other.ca_verify,
            p256_sign: self.p256_sign + other.p256_sign,
            p256_verify: self.p256_verify + other.p256_verify,
            x25519: self.x25519 + other.x25519,
        }
    }

    /// The CA's operations per renewal in `mode`, the client talking to it directly.
    pub fn ca_direct(mode: Mode) -> Self {
        Self::HANDSHAKE.plus(Self::ca_decision(mode))
    }

    /// What the CA's decision itself signs and verifies (no handshake).
    fn ca_decision(mode: Mode) -> Self {
        match mode {
            // PKCS#10 by the new key, CMS signers new and old key; the certificate and the
            // signed response.
            Mode::FullCmc | Mode::Cmc | Mode::Wstep => Self {
                ca_sign: 2,
                p256_verify: 3,
                ..Self::default()
            },
            // The PKCS#10 by the new key; the certificate (the answer is certs-only).
            Mode::SimpleReenroll => Self {
                ca_sign: 1,
                p256_verify: 1,
                ..Self::default()
            },
            // kur protection (old key) and POP (new key), certConf protection; the
            // certificate, the kup's protection and the pkiConf's.
            Mode::Cmp => Self {
                ca_sign: 3,
                p256_verify: 3,
                ..Self::default()
            },
        }
    }

    /// A gateway's own operations per renewal in `mode`: the client's handshake, the same
    /// checks of the request as the CA's, the RA's signature on what it forwards and on its
    /// answer, and the upstream's answer verified (its signature and the certificate's chain).
    /// Its connection to the upstream is kept alive: no handshake per renewal.
    pub fn gateway(mode: Mode) -> Self {
        Self::HANDSHAKE.plus(Self::gateway_decision(mode))
    }

    /// A gateway's operations per renewal without its handshake with the client.
    fn gateway_decision(mode: Mode) -> Self {
        let checks = Self {
            p256_verify: Self::ca_decision(mode).p256_verify,
            ..Self::default()
        };
        let forward = match mode {
            // The RA's wrapper; the upstream's signed response and the certificate; the
            // gateway's signed answer.
            Mode::FullCmc | Mode::Cmc | Mode::Wstep => Self {
                p256_sign: 2,
                ca_verify: 2,
                ..Self::default()
            },
            // The RA's wrapper; the response and the certificate; a certs-only answer.
            Mode::SimpleReenroll => Self {
                p256_sign: 1,
                ca_verify: 2,
                ..Self::default()
            },
            // Nested kur and certConf, the kup and pkiConf re-protected; the upstream's kup,
            // its certificate and its pkiConf.
            Mode::Cmp => Self {
                p256_sign: 4,
                ca_verify: 3,
                ..Self::default()
            },
        };
        checks.plus(forward)
    }

    /// The time these operations take at `unit`'s speed.
    pub fn cost(self, unit: &Unit) -> Duration {
        unit.ca_sign * self.ca_sign
            + unit.ca_verify * self.ca_verify
            + unit.p256_sign * self.p256_sign
            + unit.p256_verify * self.p256_verify
            + unit.x25519 * self.x25519
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CA sign, {} CA verify, {} P-256 sign, {} P-256 verify, {} X25519",
            self.ca_sign, self.ca_verify, self.p256_sign, self.p256_verify, self.x25519
        )
    }
}

/// CPU time this thread has run, from the scheduler (`/proc/thread-self/schedstat`, in
/// nanoseconds; it lags by at most a scheduler tick, so it is read over long windows only).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// How long one run of `op` takes in CPU time: runs it until the thread has spent
/// [`WINDOW`] on it. Timed by the thread's own CPU time, so that a measurement taken while the
/// machine is busy counts what the operation costs on a shared core (caches, memory
/// bandwidth, a sibling's load), not the time the thread waited for one; wall time when the
/// scheduler's figure is unavailable.
fn per_op(mut op: impl FnMut() -> Result<(), String>) -> Result<Duration, String> {
    for _ in 0..3 {
        op()?;
    }
    let wall = Instant::now();
    let started = thread_cpu();
    let spent = || match started {
        Some(at) => thread_cpu().map_or(wall.elapsed(), |now| now.saturating_sub(at)),
        None => wall.elapsed(),
    };
    let mut runs = 0_u32;
    loop {
        for _ in 0..4 {
            op()?;
        }
        runs += 4;
        let cpu = spent();
        if cpu >= WINDOW {
            return Ok(cpu / runs);
        }
    }
}

/// CPU time each operation is run for: long against the scheduler's tick (4 ms at most).
const WINDOW: Duration = Duration::from_millis(250);

/// One signature by `key` over `message`, as an operation to time.
fn signing<'a>(key: &'a SoftwareKey, message: &'a [u8]) -> impl FnMut() -> Result<(), String> + 'a {
    move || key.sign(message).map(|_| ()).map_err(|e| e.to_string())
}

/// One verification of `key`'s signature over `message`, as an operation to time.
fn checking<'a>(
    key: &SoftwareKey,
    message: &'a [u8],
) -> Result<impl FnMut() -> Result<(), String> + 'a, String> {
    let signature = key.sign(message).map_err(|e| e.to_string())?;
    let (spki, algorithm) = (key.public_key().clone(), key.algorithm());
    Ok(move || verify(&spki, algorithm, message, &signature).map_err(|e| e.to_string()))
}

/// Times each operation, with a CA key of `ca_key`.
pub fn measure(ca_key: KeyAlgorithm) -> Result<Unit, String> {
    let authority = Authority::generate_with(std::time::SystemTime::now(), ca_key)
        .map_err(|e| e.to_string())?;
    let ca = &authority.issuing.key;
    let p256 = SoftwareKey::generate_p256().map_err(|e| e.to_string())?;
    let message = [0x5a_u8; 512];
    let sign = |key| signing(key, &message);
    let check = |key| checking(key, &message);
    let rng = SystemRandom::new();
    let peer = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|e| e.to_string())?;
    let peer = peer.compute_public_key().map_err(|e| e.to_string())?;
    let exchange = || {
        let own = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|e| e.to_string())?;
        let _ = own.compute_public_key().map_err(|e| e.to_string())?;
        agreement::agree_ephemeral(
            own,
            UnparsedPublicKey::new(&X25519, peer.as_ref()),
            "X25519 agreement failed".to_string(),
            |secret| Ok(secret.len()),
        )
        .map(|_| ())
    };
    Ok(Unit {
        ca_sign: per_op(sign(ca))?,
        ca_verify: per_op(check(ca)?)?,
        p256_sign: per_op(sign(&p256))?,
        p256_verify: per_op(check(&p256)?)?,
        x25519: per_op(exchange)?,
    })
}

/// Times the operations on this thread, and what the timing itself cost it in CPU (to take
/// out of the clients' share when it ran during the load).
pub fn measure_costing(ca_key: KeyAlgorithm) -> Result<(Unit, Duration), String> {
    let before = thread_cpu();
    let unit = measure(ca_key)?;
    let spent = match (before, thread_cpu()) {
        (Some(b), Some(a)) => a.saturating_sub(b),
        _ => Duration::ZERO,
    };
    Ok((unit, spent))
}

/// The floor of a run, ready to print beside the measured CPU.
#[derive(Clone, Debug)]
pub struct Floor {
    /// The operations timed after the run, the machine idle.
    pub idle: Unit,
    /// The operations timed during the run, with every core busy as the servers' were
    /// (`None` for a run too short to take it).
    pub busy: Option<Unit>,
    /// The CA's operations per renewal.
    pub ca: Count,
    /// The gateway's operations per renewal (when the run had gateways).
    pub gateway: Option<Count>,
    /// The CA's operations per renewal without a TLS handshake (its decision's: the
    /// connection's own are in the transport's figure, [`super::transport`]).
    pub ca_decision: Count,
    /// The gateway's, likewise.
    pub gateway_decision: Option<Count>,
}

impl Floor {
    /// The floor of a run in `mode`, through gateways or not, with the operations' times.
    pub fn of_run(mode: Mode, gateways: bool, idle: Unit, busy: Option<Unit>) -> Self {
        let (ca, ca_decision) = if gateways {
            // Behind a gateway the CA's connection is kept alive: no handshake per renewal.
            // It verifies the RA's wrapper (or nested message) besides the user's request, and
            // the user's certificate (no TLS handshake verified it); a re-enrollment is
            // answered to the RA in signed CMC.
            let ca = Count::ca_decision(mode).plus(Count {
                ca_sign: u32::from(mode == Mode::SimpleReenroll),
                ca_verify: 1,
                p256_verify: 1 + u32::from(mode == Mode::Cmp),
                ..Count::default()
            });
            (ca, ca)
        } else {
            (Count::ca_direct(mode), Count::ca_decision(mode))
        };
        Self {
            idle,
            busy,
            ca,
            gateway: gateways.then(|| Count::gateway(mode)),
            ca_decision,
            gateway_decision: gateways.then(|| Count::gateway_decision(mode)),
        }
    }

    /// One report line: `who`'s floor per renewal for `count`, idle and busy, and how far
    /// `cpu_per_renewal` is above each.
    pub fn line(&self, who: &str, count: Count, cpu_per_renewal: Duration) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let cpu = ms(cpu_per_renewal);
        let idle = ms(count.cost(&self.idle));
        let busy = self.busy.map(|b| ms(count.cost(&b)));
        match busy {
            Some(busy) => format!(
                "floor         {who}: {idle:.2} ms idle, {busy:.2} ms with the cores busy ({count}); CPU {:.2}x / {:.2}x it\n",
                cpu / idle,
                cpu / busy
            ),
            None => format!(
                "floor         {who}: {idle:.2} ms idle ({count}); CPU {:.2}x it\n",
                cpu / idle
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cmc_renewal_costs_the_ca_two_signatures_five_verifications_and_a_handshake() {
        let c = Count::ca_direct(Mode::FullCmc);
        assert_eq!((c.ca_sign, c.ca_verify + c.p256_verify), (2, 5));
        assert_eq!((c.p256_sign, c.x25519), (1, 1));
        assert_eq!(Count::ca_direct(Mode::SimpleReenroll).ca_sign, 1);
    }

    #[test]
    fn behind_a_gateway_the_ca_answers_a_reenrollment_in_signed_cmc_and_checks_the_user() {
        let floor = Floor::of_run(Mode::SimpleReenroll, true, Unit::default(), None);
        assert_eq!((floor.ca.ca_sign, floor.ca.ca_verify), (2, 1));
        assert_eq!((floor.ca.p256_verify, floor.ca.x25519), (2, 0));
        assert!(floor.gateway.is_some());
    }

    #[test]
    fn a_decision_is_the_renewal_without_the_handshake_of_the_connection_that_brought_it() {
        for mode in [Mode::FullCmc, Mode::SimpleReenroll, Mode::Cmp] {
            let direct = Floor::of_run(mode, false, Unit::default(), None);
            assert_eq!(direct.ca_decision.plus(Count::HANDSHAKE), direct.ca);
            let behind = Floor::of_run(mode, true, Unit::default(), None);
            // The gateway keeps its connection to the CA: the CA has no handshake to take off.
            assert_eq!(behind.ca_decision, behind.ca);
            let gateway = behind.gateway_decision.expect("a gateway's decision");
            assert_eq!(Some(gateway.plus(Count::HANDSHAKE)), behind.gateway);
            assert_eq!(gateway.x25519, 0);
        }
    }

    #[test]
    fn the_cost_adds_each_operation_at_its_time() {
        let unit = Unit {
            ca_sign: Duration::from_micros(1000),
            ca_verify: Duration::from_micros(30),
            p256_sign: Duration::from_micros(20),
            p256_verify: Duration::from_micros(60),
            x25519: Duration::from_micros(40),
        };
        // 2 x 1000 + 30 + 20 + 4 x 60 + 40.
        assert_eq!(
            Count::ca_direct(Mode::FullCmc).cost(&unit),
            Duration::from_micros(2330)
        );
    }
}
