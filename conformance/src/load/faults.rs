//! What breaks during a load run, one fault at a time: a server process (the CA or a gateway)
//! killed with SIGKILL and restarted, the PostgreSQL store crashed and brought back after an
//! outage, its client backends terminated. One thread injects them all, so that two faults
//! never overlap (a gateway restarted while its database is down would fail to start, which
//! says nothing about the gateway).

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{cluster::Cluster, server::Server};

/// Faults of the shared PostgreSQL store.
#[derive(Clone, Debug, Default)]
pub struct StoreFaults {
    /// The cluster (the directory `scripts/pg-temp.sh` printed) the load may take down.
    pub cluster: Option<PathBuf>,
    /// Mean time between crashes of the cluster (`pg_ctl stop -m immediate`); `None`: never.
    pub restart_every: Option<Duration>,
    /// How long the cluster stays down after a crash.
    pub outage: Duration,
    /// Mean time between `pg_terminate_backend` of every client backend; `None`: never.
    pub terminate_every: Option<Duration>,
}

impl StoreFaults {
    /// Whether any store fault is asked for.
    pub fn any(&self) -> bool {
        self.restart_every.is_some() || self.terminate_every.is_some()
    }
}

/// How many faults of each kind were injected.
#[derive(Debug, Default)]
pub(super) struct Injected {
    pub(super) kills: AtomicU64,
    pub(super) store_restarts: AtomicU64,
    pub(super) store_terminations: AtomicU64,
}

/// A fault's schedule: waits drawn between 0.5x and 1.5x the mean (xorshift64).
struct Schedule {
    every: Duration,
    next: Instant,
}

struct Rng(u64);

impl Rng {
    fn wait(&mut self, every: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        every.mul_f64(0.5 + (self.0 % 1000) as f64 / 1000.0)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

enum Fault {
    Kill,
    StoreRestart,
    StoreTerminate,
}

/// Injects faults until `stop`: kills among `servers` (the CA first, then the gateways) every
/// `kill_every`, and the store faults. Leaves every server running and the cluster up.
pub(super) fn inject(
    kill_every: Option<Duration>,
    store: &StoreFaults,
    servers: &[Arc<Mutex<Server>>],
    stop: &AtomicBool,
    injected: &Injected,
    seed: u64,
) -> Result<(), String> {
    let cluster = match (&store.cluster, store.any()) {
        (Some(dir), true) => Some(Cluster::attach(dir)?),
        (None, true) => {
            return Err("store faults need the PostgreSQL cluster (--postgres DIR)".into());
        }
        (_, false) => None,
    };
    let mut rng = Rng(seed | 1);
    let now = Instant::now();
    let mut schedules: Vec<(Fault, Schedule)> = [
        (Fault::Kill, kill_every),
        (Fault::StoreRestart, store.restart_every),
        (Fault::StoreTerminate, store.terminate_every),
    ]
    .into_iter()
    .filter_map(|(fault, every)| {
        let every = every?;
        Some((
            fault,
            Schedule {
                every,
                next: now + rng.wait(every),
            },
        ))
    })
    .collect();
    let result = (|| -> Result<(), String> {
        while !stop.load(Ordering::Relaxed) {
            let Some((fault, schedule)) = schedules.iter_mut().min_by_key(|(_, s)| s.next) else {
                return Ok(());
            };
            if Instant::now() < schedule.next {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            match fault {
                Fault::Kill => {
                    let target = &servers[rng.below(servers.len())];
                    let mut server = target.lock().map_err(|_| "server lock poisoned")?;
                    server.kill();
                    injected.kills.fetch_add(1, Ordering::Relaxed);
                    server.start()?;
                }
                Fault::StoreRestart => {
                    let cluster = cluster.as_ref().ok_or("no cluster")?;
                    cluster.crash()?;
                    injected.store_restarts.fetch_add(1, Ordering::Relaxed);
                    let back = Instant::now() + store.outage;
                    while Instant::now() < back && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    cluster.start()?;
                }
                Fault::StoreTerminate => {
                    let cluster = cluster.as_ref().ok_or("no cluster")?;
                    cluster.terminate_backends()?;
                    injected.store_terminations.fetch_add(1, Ordering::Relaxed);
                }
            }
            schedule.next = Instant::now() + rng.wait(schedule.every);
        }
        Ok(())
    })();
    // Whatever happened, the checks at the end read the store: it must be up.
    if let Some(cluster) = &cluster
        && !cluster.running()
    {
        cluster.start()?;
    }
    result
}
