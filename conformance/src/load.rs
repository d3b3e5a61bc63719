//! `conformance load`: concurrent renewals against `sim-ca serve` running as a separate
//! process, which is killed with SIGKILL at random moments and restarted. Each client is a
//! distinct user with a virtual card in this process and its own journal; every renewal uses
//! real mutual TLS. Afterwards the CA's database and every card are checked:
//!
//! * every client ended renewed, rolled back, or recovered (and its card holds exactly one
//!   valid certificate, no orphan container);
//! * every certificate a client installed is in the CA's database with its `issued` audit
//!   record;
//! * no serial was issued twice, and no audit record names a certificate the database lacks
//!   (a record without its effect) — nor is a certificate missing its record.
//!
//! What it proves is the "one transaction per decision" design: a kill between the issued
//! certificate and its audit record is impossible, and a client that lost the answer rolls
//! back cleanly.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use renewal_client::{
    client::{
        Mode,
        https::SharedToken,
        processor::{RecoveryOutcome, Renewal, RenewalOutcome, recover},
    },
    cmc::Retained,
    token::{
        ContainerId, KeyAlgorithm,
        pin::{CountingPinSource, StaticPin},
        piv::{ManagementKey, PivToken},
        transport::SimTransport,
    },
};
use sim_ca::{
    authority::Authority,
    policy::serial_text,
    store::{AuditOutcome, Store},
};
use sim_card::{CardConfig, PivApplet, SimCard};
use x509_cert::Certificate;

use crate::harness::{ExternalCa, World};

mod cluster;
mod database;
mod faults;
pub mod floor;
mod gateways;
mod report;
mod server;
pub mod transport;

pub use cluster::Cluster;
use database::{check_database, prefill};
pub use faults::StoreFaults;
use gateways::start_gateways;
pub use report::{LoadReport, ServerFootprint};
pub use server::{Footprint, cpu_ticks, footprint};
use server::{Server, free_port, ticks_to_duration};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The `sim-ca` binary.
    pub sim_ca: PathBuf,
    /// Concurrent clients (distinct users).
    pub clients: usize,
    /// How long clients keep renewing.
    pub duration: Duration,
    /// Mean time between kills (each wait is drawn from 0.5x–1.5x); `None`: never kill.
    pub kill_every: Option<Duration>,
    /// Renewal mode.
    pub mode: Mode,
    /// RNG seed for the kill schedule.
    pub seed: u64,
    /// Keep going past `duration` until the server was killed this many times (at most four
    /// times `duration` in all): a loaded machine restarts the server slowly, and a run that
    /// never killed it proves nothing.
    pub min_kills: u64,
    /// Certificates (each with its audit record and seen nonce and transaction id) written
    /// into the CA's store before the run, to show a renewal's cost does not grow with them.
    pub prefill: u64,
    /// The CA's key (RSA-2048 by default, as ADCS).
    pub ca_key: renewal_client::token::KeyAlgorithm,
    /// Renewal gateways (`sim-ca serve --mode gateway`) in front of the CA, clients spread
    /// over them round-robin; 0: clients talk to the CA directly.
    pub gateways: usize,
    /// The gateways' shared state (a `postgres://` URL; needed for more than one). `None`
    /// with one gateway: a SQLite file.
    pub gateway_store: Option<String>,
    /// The CA's state (a `postgres://` URL); `None`: SQLite in its state directory.
    pub ca_store: Option<String>,
    /// Crashes and terminations of the PostgreSQL store while the clients run.
    pub store_faults: StoreFaults,
    /// Re-sends of a request whose answer was lost (0: roll back at once, as before the
    /// re-send existed; to compare).
    pub retries: u32,
}

/// A server's name and its footprint when warm and at the end, as far as they could be read.
type Sampled = (
    String,
    Option<Footprint>,
    Option<Footprint>,
    Option<Footprint>,
);

/// One user: a virtual card enrolled with the CA.
struct Client {
    name: String,
    card: Arc<Mutex<SimCard>>,
    token: SharedToken,
    pins: Arc<CountingPinSource<StaticPin>>,
    primary: Arc<Mutex<ContainerId>>,
}

impl Client {
    /// This user's world against `ca`: its card, its PINs, the CA's address.
    fn world(&self, ca: &ExternalCa) -> Result<World, String> {
        World::external(
            ca,
            self.token.clone(),
            Some(Arc::clone(&self.card)),
            self.pins.clone(),
            crate::trace::Trace::default(),
            Arc::clone(&self.primary),
            true,
        )
    }
}

fn enroll(index: usize, authority: &Authority, seed: u64) -> Result<Client, String> {
    let config = CardConfig {
        seed: seed.wrapping_add(index as u64),
        ..CardConfig::default()
    };
    let card = Arc::new(Mutex::new(SimCard::new(
        PivApplet::new(&config).map_err(|e| e.to_string())?,
    )));
    let pins = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let piv = PivToken::new(
        SimTransport::new(Arc::clone(&card)),
        pins.clone(),
        ManagementKey::factory_default(),
    );
    let token: SharedToken = Arc::new(Mutex::new(Box::new(piv)));
    let name = format!("Load User {index}");
    {
        let mut t = token.lock().map_err(|_| "token lock")?;
        let first = t
            .generate(KeyAlgorithm::EcP256)
            .map_err(|e| e.to_string())?;
        let spki = first.public_key.clone().ok_or("no public key")?;
        let cert = renewal_client::sample::issue_named_user_certificate(
            &authority.issuing.key,
            &authority.issuing.cert,
            &spki,
            std::time::SystemTime::now(),
            &name,
            &format!("load{index}"),
        )
        .map_err(|e| e.to_string())?;
        t.install_certificate(&first.id, cert.der())
            .map_err(|e| e.to_string())?;
        t.supersede(&ContainerId("9a".into()), &first.id)
            .map_err(|e| e.to_string())?;
    }
    Ok(Client {
        name,
        card,
        token,
        pins,
        primary: Arc::new(Mutex::new(ContainerId("9a".into()))),
    })
}

#[derive(Default)]
struct Tally {
    /// Microseconds of each renewal that installed a certificate.
    latencies_us: Mutex<Vec<u64>>,
    attempts: AtomicU64,
    renewed: AtomicU64,
    rolled_back: AtomicU64,
    recovered: AtomicU64,
    pending: AtomicU64,
    /// Serials of the certificates installed on a card (renewed, or completed by recovery).
    installed: Mutex<BTreeSet<String>>,
    /// Rollbacks by reason (the reason's first clause, without ids).
    rollbacks: Mutex<BTreeMap<String, u64>>,
}

/// One attempt: a renewal, and `recover` when it ended in a card-side error.
fn attempt(
    client: &Client,
    ca: &ExternalCa,
    mode: Mode,
    retries: u32,
    tally: &Tally,
) -> Result<(), String> {
    tally.attempts.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let world = client.world(ca)?;
    let mut journal = world.journal()?;
    let outcome = match world.service(mode) {
        Ok(mut service) => Renewal::new(world.token.clone(), &mut service, &mut journal, {
            let mut config = world.config(mode, 0, None);
            config.retry.attempts = retries;
            config
        })
        .run(),
        // The server is down: nothing was started.
        Err(_) => Ok(RenewalOutcome::RolledBack {
            reason: renewal_client::client::processor::RollbackCause::Transport(
                "CA unreachable".into(),
            ),
        }),
    };
    let installed = |der: &[u8]| {
        if let (Ok(cert), Ok(mut set)) = (
            Retained::<Certificate>::from_der(der),
            tally.installed.lock(),
        ) {
            set.insert(serial_text(cert.value()));
        }
    };
    let counter = match outcome {
        Ok(RenewalOutcome::Renewed { certificate, .. }) => {
            installed(&certificate);
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if let Ok(mut l) = tally.latencies_us.lock() {
                l.push(us);
            }
            &tally.renewed
        }
        Ok(RenewalOutcome::Pending) => {
            // Not expected with the default scenario; the key goes, as the runner does.
            recover(&world.token, &mut journal).map_err(|e| e.to_string())?;
            &tally.pending
        }
        Ok(RenewalOutcome::RolledBack { reason }) => {
            if let Ok(mut r) = tally.rollbacks.lock() {
                *r.entry(rollback_kind(&reason.to_string())).or_default() += 1;
            }
            &tally.rolled_back
        }
        Err(_) => match recover(&world.token, &mut journal).map_err(|e| e.to_string())? {
            RecoveryOutcome::Pending => &tally.pending,
            RecoveryOutcome::Completed { .. } => {
                if let Ok(cert) = card_certificate(client) {
                    installed(cert.der());
                }
                &tally.recovered
            }
            _ => &tally.recovered,
        },
    };
    counter.fetch_add(1, Ordering::Relaxed);
    world
        .check_invariant()
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", client.name))
}

/// A rollback's reason without what differs from one attempt to the next (serials, hashes,
/// ports: runs of 5 or more hex digits become `#`), at most 160 characters, so that reasons
/// can be counted. HRESULTs (`0x` and 8 digits) stay.
fn rollback_kind(reason: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 5 && !out.ends_with("0x") {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in reason.chars().take(160) {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Runs the load and checks the result.
pub fn run(config: &LoadConfig) -> Result<LoadReport, String> {
    let started = Instant::now();
    let state = std::env::temp_dir().join(format!(
        "cardrenew-load-{}-{}",
        std::process::id(),
        started.elapsed().as_nanos() ^ u128::from(config.seed)
    ));
    let _cleanup = RemoveOnDrop(state.clone());
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let (authority, _) =
        Authority::load_or_create_with(&state, std::time::SystemTime::now(), config.ca_key)
            .map_err(|e| e.to_string())?;
    let anchors = vec![authority.issuing.cert.clone(), authority.root.cert.clone()];
    let clients: Vec<Client> = (0..config.clients)
        .map(|i| enroll(i, &authority, config.seed))
        .collect::<Result<_, _>>()?;
    let initial: BTreeSet<String> = clients
        .iter()
        .filter_map(|c| card_certificate(c).ok())
        .map(|c| serial_text(c.value()))
        .collect();

    if config.prefill > 0 {
        prefill(&state.join("ca.db"), config.prefill)?;
    }
    let (port, admin_port) = (free_port()?, free_port()?);
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--state".into(),
        state.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--admin".into(),
        format!("127.0.0.1:{admin_port}"),
    ];
    if config.prefill > 0 && config.ca_store.is_some() {
        return Err("--prefill writes into the CA's SQLite store: run without --ca-store".into());
    }
    if let Some(url) = &config.ca_store {
        args.extend(["--store".into(), url.clone()]);
    }
    let mut gateways = Vec::new();
    if config.gateways > 0 {
        args.extend([
            "--trust-ra".into(),
            state.join("ra.pem").display().to_string(),
        ]);
        gateways = start_gateways(config, &state, &authority, port)?;
    }
    let mut server = Server {
        binary: config.sim_ca.clone(),
        args,
        port,
        admin_port,
        child: None,
        cpu_ticks: 0,
        fsyncs: Some(0),
    };
    server.start()?;
    for gateway in &mut gateways {
        gateway.start()?;
    }
    let endpoints: Vec<ExternalCa> = if gateways.is_empty() {
        vec![ExternalCa {
            base_url: format!("https://localhost:{}", server.port),
            anchors: anchors.clone(),
        }]
    } else {
        gateways
            .iter()
            .map(|g| ExternalCa {
                base_url: format!("https://localhost:{}", g.port),
                anchors: anchors.clone(),
            })
            .collect()
    };
    let gateways: Vec<Arc<Mutex<Server>>> = gateways
        .into_iter()
        .map(|g| Arc::new(Mutex::new(g)))
        .collect();
    let on_postgres = config.gateway_store.is_some() || config.ca_store.is_some();
    let postgres_before = on_postgres.then(postgres_ticks);
    let server = Arc::new(Mutex::new(server));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let injected = Arc::new(faults::Injected::default());

    let faulting = config.kill_every.is_some() || config.store_faults.any();
    let injector = faulting.then(|| {
        let servers: Vec<Arc<Mutex<Server>>> = std::iter::once(Arc::clone(&server))
            .chain(gateways.iter().map(Arc::clone))
            .collect();
        let (stop, injected, kill_every, store, seed) = (
            Arc::clone(&stop),
            Arc::clone(&injected),
            config.kill_every,
            config.store_faults.clone(),
            config.seed,
        );
        std::thread::spawn(move || {
            faults::inject(kill_every, &store, &servers, &stop, &injected, seed)
        })
    });

    let clients_started = Instant::now();
    let deadline = clients_started + config.duration;
    let hard_deadline = clients_started + config.duration * 4;
    let min_kills = if config.kill_every.is_some() {
        config.min_kills
    } else {
        0
    };
    let own_pid = std::process::id().to_string();
    let client_ticks_before = cpu_ticks(&own_pid).unwrap_or(0);
    let samples: Mutex<Vec<Sampled>> = Mutex::new(Vec::new());
    let busy: Mutex<Option<(floor::Unit, Duration)>> = Mutex::new(None);
    std::thread::scope(|scope| {
        {
            let (samples, server, gateways, kills) =
                (&samples, &server, &gateways, &injected.kills);
            let warm = clients_started + (config.duration / 10).max(Duration::from_secs(1));
            scope.spawn(move || {
                let now_all = || {
                    let mut all = vec![(
                        "CA".to_string(),
                        server.lock().ok().and_then(|s| s.footprint()),
                    )];
                    for (i, g) in gateways.iter().enumerate() {
                        all.push((
                            format!("gateway {}", i + 1),
                            g.lock().ok().and_then(|g| g.footprint()),
                        ));
                    }
                    all
                };
                let mut first: Option<Vec<(String, Option<Footprint>)>> = None;
                let mut last = Vec::new();
                let mut peaks: Vec<Option<Footprint>> = Vec::new();
                loop {
                    let now = Instant::now();
                    let running = now < deadline
                        || (kills.load(Ordering::Relaxed) < min_kills && now < hard_deadline);
                    if !running {
                        break;
                    }
                    if now >= warm {
                        let sample = now_all();
                        if first.is_none() {
                            first = Some(sample.clone());
                        }
                        peaks.resize(sample.len(), None);
                        for (peak, (_, now)) in peaks.iter_mut().zip(&sample) {
                            *peak = match (*peak, *now) {
                                (Some(p), Some(n)) => Some(p.max(n)),
                                (p, n) => p.or(n),
                            };
                        }
                        last = sample;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                if let (Some(first), Ok(mut out)) = (first, samples.lock()) {
                    for (((name, warm), (_, end)), peak) in first.into_iter().zip(last).zip(peaks) {
                        out.push((name, warm, peak, end));
                    }
                }
            });
        }
        // The crypto floor timed mid-run, the cores as busy as the servers' were.
        if config.duration >= Duration::from_secs(5) {
            let (busy, ca_key) = (&busy, config.ca_key);
            let at = clients_started + config.duration * 2 / 5;
            scope.spawn(move || {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                if let (Ok(timed), Ok(mut out)) = (floor::measure_costing(ca_key), busy.lock()) {
                    *out = Some(timed);
                }
            });
        }
        for (i, client) in clients.iter().enumerate() {
            let ca = &endpoints[i % endpoints.len()];
            let (tally, failures, kills) = (&tally, &failures, &injected.kills);
            let mode = config.mode;
            scope.spawn(move || {
                let more = || {
                    let now = Instant::now();
                    now < deadline
                        || (kills.load(Ordering::Relaxed) < min_kills && now < hard_deadline)
                };
                while more() {
                    if let Err(e) = attempt(client, ca, mode, config.retries, tally) {
                        if let Ok(mut f) = failures.lock() {
                            f.push(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    let client_ticks = cpu_ticks(&own_pid)
        .unwrap_or(0)
        .saturating_sub(client_ticks_before);
    // The floor's timing ran in this process: its CPU is not the clients'.
    let (busy_floor, timing_cpu) = busy
        .into_inner()
        .ok()
        .flatten()
        .map_or((None, Duration::ZERO), |(unit, spent)| (Some(unit), spent));
    let renewing = clients_started.elapsed();
    // The servers' CPU for the renewals, then for connections that only warm up.
    let probe = (!faulting && config.duration >= Duration::from_secs(5)).then(|| {
        let before = servers_ticks(&server, &gateways);
        let window = (config.duration / 5).clamp(Duration::from_secs(2), Duration::from_secs(5));
        let connections = transport::connections(clients.len(), window, |i| {
            warm_up(&clients[i], &endpoints[i % endpoints.len()], config.mode)
        });
        let after = servers_ticks(&server, &gateways);
        let spent = |from: (u64, u64), to: (u64, u64)| {
            (
                ticks_to_duration(to.0.saturating_sub(from.0)),
                (!gateways.is_empty()).then(|| ticks_to_duration(to.1.saturating_sub(from.1))),
            )
        };
        let (ca_cpu, gateway_cpu) = spent(before, after);
        // CMP's warm-up is the handshake alone: there is no exchange to make twice.
        let again = (config.mode != Mode::Cmp).then(|| {
            let connections = transport::connections(clients.len(), window, |i| {
                warm_up_twice(&clients[i], &endpoints[i % endpoints.len()], config.mode)
            });
            let (ca_cpu, gateway_cpu) = spent(after, servers_ticks(&server, &gateways));
            transport::Again {
                connections,
                ca_cpu,
                gateway_cpu,
            }
        });
        let transport = transport::Transport {
            connections,
            window,
            ca_cpu,
            gateway_cpu,
            what: match config.mode {
                Mode::Cmp => "the handshake",
                Mode::Wstep => "handshake, GET of the service",
                _ => "handshake, GET /cacerts",
            },
            again,
            // The request (and CMP's certConf); the gateway's also goes upstream.
            exchanges: if config.mode == Mode::Cmp {
                (2, 4)
            } else {
                (1, 2)
            },
        };
        (before, transport)
    });
    // A crashed cluster's processes took their CPU times with them: not measurable then.
    let postgres_cpu = postgres_before
        .filter(|_| injected.store_restarts.load(Ordering::Relaxed) == 0)
        .map(|before| ticks_to_duration(postgres_ticks().saturating_sub(before)));
    stop.store(true, Ordering::Relaxed);
    let mut violations = failures.lock().map(|f| f.clone()).unwrap_or_default();
    if let Some(injector) = injector {
        match injector.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => violations.push(format!("injecting a fault: {e}")),
            Err(_) => violations.push("the fault injector panicked".into()),
        }
    }
    let gateway_ticks: u64 = gateways
        .iter()
        .map(|g| {
            g.lock().map_or(0, |mut g| {
                g.kill();
                g.cpu_ticks
            })
        })
        .sum();
    let gateway_ticks = probe.as_ref().map_or(gateway_ticks, |((_, g), _)| *g);
    // Stop the server so the database is read as a restart would find it.
    let (server_ticks, fsyncs) = match server.lock() {
        Ok(mut s) => {
            s.kill();
            (s.cpu_ticks, s.fsyncs)
        }
        Err(_) => (0, None),
    };
    let (server_ticks, transport) = match probe {
        Some(((ca, _), transport)) => (ca, Some(transport)),
        None => (server_ticks, None),
    };
    let store = match &config.ca_store {
        Some(url) => Store::open_location(url),
        None => Store::open(&state.join("ca.db")),
    }
    .map_err(|e| e.to_string())?;
    let certificates: BTreeMap<String, String> = store
        .certificates()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(serial, subject, _)| (serial, subject))
        .collect();
    let audit = store.audit().map_err(|e| e.to_string())?;
    check_database(&certificates, &audit, &mut violations);
    let mut seen_on_cards = BTreeSet::new();
    for client in &clients {
        match card_certificate(client) {
            Ok(cert) => {
                let serial = serial_text(cert.value());
                if !seen_on_cards.insert(serial.clone()) {
                    violations.push(format!("serial {serial} is on two cards"));
                }
                if initial.contains(&serial) {
                    continue;
                }
                if !certificates.contains_key(&serial) {
                    violations.push(format!(
                        "{}: installed certificate {serial} is not in the CA database",
                        client.name
                    ));
                }
                if !audit.iter().any(|r| {
                    r.outcome == AuditOutcome::Issued && r.serial.as_deref() == Some(&serial)
                }) {
                    violations.push(format!(
                        "{}: installed certificate {serial} has no issued audit record",
                        client.name
                    ));
                }
            }
            Err(e) => violations.push(format!("{}: {e}", client.name)),
        }
    }
    // Renewals the CA issued and audited that no card ever held: an answer lost for good
    // (the client rolled back, or gave up its re-sends, after the CA had issued).
    let installed = tally
        .installed
        .lock()
        .map_err(|_| "tally lock poisoned")?
        .clone();
    let issued_not_installed = audit
        .iter()
        .filter(|r| r.outcome == AuditOutcome::Issued && r.detail.starts_with("renewal of"))
        .filter_map(|r| r.serial.as_ref())
        .filter(|s| !installed.contains(*s) && !seen_on_cards.contains(*s))
        .count() as u64;
    Ok(LoadReport {
        issued_not_installed,
        attempts: tally.attempts.load(Ordering::Relaxed),
        renewed: tally.renewed.load(Ordering::Relaxed),
        rolled_back: tally.rolled_back.load(Ordering::Relaxed),
        rollback_reasons: {
            let mut r: Vec<(String, u64)> = tally
                .rollbacks
                .lock()
                .map(|r| r.clone().into_iter().collect())
                .unwrap_or_default();
            r.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            r
        },
        recovered: tally.recovered.load(Ordering::Relaxed),
        pending: tally.pending.load(Ordering::Relaxed),
        kills: injected.kills.load(Ordering::Relaxed),
        store_restarts: injected.store_restarts.load(Ordering::Relaxed),
        store_terminations: injected.store_terminations.load(Ordering::Relaxed),
        certificates: certificates.len(),
        audit_records: audit.len(),
        violations,
        elapsed: started.elapsed(),
        renewing,
        latencies_us: {
            let mut l = tally
                .latencies_us
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default();
            l.sort_unstable();
            l
        },
        server_cpu: ticks_to_duration(server_ticks),
        footprints: samples
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, warm, peak, end)| {
                Some(ServerFootprint {
                    name,
                    warm: warm?,
                    peak: peak?,
                    end: end?,
                })
            })
            .collect(),
        client_cpu: ticks_to_duration(client_ticks).saturating_sub(timing_cpu),
        fsyncs,
        prefilled: config.prefill,
        gateways: config.gateways,
        gateway_cpu: ticks_to_duration(gateway_ticks),
        postgres_cpu,
        // Timed again after the clients stopped, with nothing else of the run going on.
        floor: floor::measure(config.ca_key)
            .ok()
            .map(|idle| floor::Floor::of_run(config.mode, config.gateways > 0, idle, busy_floor)),
        transport,
    })
}

/// CPU ticks so far of the CA and of every gateway (all their lives).
fn servers_ticks(server: &Mutex<Server>, gateways: &[Arc<Mutex<Server>>]) -> (u64, u64) {
    let ticks = |s: &Mutex<Server>| s.lock().map_or(0, |s| s.ticks_now());
    (ticks(server), gateways.iter().map(|g| ticks(g)).sum())
}

/// One connection that does only a renewal's warm-up (for [`transport`]).
fn warm_up(client: &Client, ca: &ExternalCa, mode: Mode) -> Result<(), String> {
    use renewal_client::client::RenewalService;
    let world = client.world(ca)?;
    let mut service = world.service(mode)?;
    service.warm_up().map(|_| ()).map_err(|e| e.to_string())
}

/// One connection that makes the warm-up's exchange twice (for [`transport::Again`]): the
/// second goes over the connection the first opened.
fn warm_up_twice(client: &Client, ca: &ExternalCa, mode: Mode) -> Result<(), String> {
    use renewal_client::client::RenewalService;
    let world = client.world(ca)?;
    let mut service = world.service(mode)?;
    service.warm_up().map_err(|e| e.to_string())?;
    service.warm_up().map(|_| ()).map_err(|e| e.to_string())
}

/// CPU ticks of every `postgres` process on the machine (the load's database server).
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == "postgres")
                .then(|| cpu_ticks(&pid))
                .flatten()
        })
        .sum()
}

fn card_certificate(client: &Client) -> Result<Retained<Certificate>, String> {
    let containers = client
        .token
        .lock()
        .map_err(|_| "token lock")?
        .containers()
        .map_err(|e| e.to_string())?;
    let with_cert: Vec<_> = containers
        .iter()
        .filter(|c| c.certificate.is_some())
        .collect();
    let [only] = with_cert.as_slice() else {
        return Err(format!(
            "expected one certificate on the card, found {}",
            with_cert.len()
        ));
    };
    Retained::from_der(only.certificate.as_deref().unwrap_or_default()).map_err(|e| e.to_string())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `sim-ca` binary next to `exe` (cargo puts every binary of a profile in one directory;
/// test binaries are one level down, in `deps`).
pub fn sim_ca_next_to(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    [dir.join("sim-ca"), dir.parent()?.join("sim-ca")]
        .into_iter()
        .find(|p| p.exists())
}
