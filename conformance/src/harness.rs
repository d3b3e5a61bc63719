//! One renewal world: a CA over loopback mutual TLS, a virtual card with a certificate from
//! it, a counting PIN source, a journal — and the checks every scenario ends with.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use renewal_client::{
    client::{
        Mode,
        https::{HttpsConfig, HttpsService, SharedToken},
        journal::Journal,
        processor::{CrashPoint, RenewalConfig},
    },
    cmc::Retained,
    token::{
        Container, ContainerId, KeyAlgorithm,
        pin::{CountingPinSource, StaticPin},
        piv::{ManagementKey, PivToken},
        transport::SimTransport,
    },
};
use sim_ca::{Ca, authority::Authority, clock::Clock, http, scenario::Scenario, store::Store};
use sim_card::{CardConfig, FaultPlan, PivApplet, SimCard};
use x509_cert::Certificate;

/// How a gateway reaches the simulated CA behind it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum GatewayRoute {
    /// Over HTTPS, forwarding full CMC with this protocol.
    Network(sim_ca::gateway::upstream::CmcProtocol),
    /// In the same process (`sim_ca::gateway::ca_backend::SimulatedAuthority`).
    InProcess,
}

/// A gateway in front of `ca` (listening at `upstream`), trusting its CA for users and as the
/// upstream, with `ra` as its identity, and the scenario's templates, grace and profile.
fn gateway_in_front(
    ca: &Arc<Ca>,
    scenario: &Scenario,
    upstream: SocketAddr,
    ra: sim_ca::gateway::RaCredential,
    route: GatewayRoute,
) -> Result<Arc<sim_ca::gateway::Gateway>, Error> {
    let cas = vec![
        ca.authority().issuing.cert.clone(),
        ca.authority().root.cert.clone(),
    ];
    let backend: Box<dyn sim_ca::gateway::ca_backend::CaBackend> = match route {
        GatewayRoute::Network(protocol) => Box::new(sim_ca::gateway::upstream::Upstream::new(
            &format!("https://localhost:{}", upstream.port()),
            protocol,
            &cas,
            &ra.key,
            &ra.chain,
            Duration::from_secs(20),
        )?),
        GatewayRoute::InProcess => Box::new(sim_ca::gateway::ca_backend::SimulatedAuthority::new(
            Arc::clone(ca),
            ra.chain[0].der().to_vec(),
        )),
    };
    let policy = sim_ca::gateway::Policy {
        client_cas: vec![ca.authority().issuing.cert.clone()],
        upstream_cas: cas,
        templates: sim_ca::templates::TemplateRegistry::from_configs(&scenario.templates)?,
        grace: Duration::from_secs(u64::from(scenario.grace_days) * 86400),
        profile: scenario.profile,
        retry_after: 5,
        max_pending_per_identity: scenario.max_pending_per_identity,
    };
    let store = Store::in_memory().map_err(|e| e.to_string())?;
    Ok(Arc::new(sim_ca::gateway::Gateway::new(
        policy,
        ra,
        backend,
        store,
        ca.clock().clone(),
    )?))
}

/// A CA this harness did not start (interop mode): where it is and what it chains to.
#[derive(Clone)]
pub struct ExternalCa {
    /// Its base URL, e.g. `https://ca.example:8443`.
    pub base_url: String,
    /// The CA certificates trusted for its TLS server and for what it issues.
    pub anchors: Vec<Retained<Certificate>>,
}

/// Everything a scenario touches.
pub struct World {
    /// The simulated CA (`None` when the CA is external: nothing to configure or inspect).
    pub ca: Option<Arc<Ca>>,
    /// The renewal gateway in front of it, when the world goes through one
    /// ([`World::routed`]).
    pub gateway: Option<Arc<sim_ca::gateway::Gateway>>,
    /// The CA's base URL.
    pub base_url: String,
    /// The CA certificates a client trusts.
    anchors: Vec<Retained<Certificate>>,
    /// The virtual card (`None` when the token is a real one, e.g. PKCS#11).
    pub card: Option<Arc<Mutex<SimCard>>>,
    /// The token over the card, shared by TLS and the driver.
    pub token: SharedToken,
    /// PIN prompts.
    pub pins: Arc<CountingPinSource<StaticPin>>,
    /// The certificate being renewed.
    pub old_cert: Retained<Certificate>,
    /// The container holding the current certificate (9a on a PIV card; on a PKCS#11 token,
    /// wherever the last renewal left it).
    /// Shared so a sequence of scenarios on one real token can follow it (interop mode).
    pub primary: Arc<Mutex<ContainerId>>,
    /// Whether the certificate always lives in `primary` (PIV slots) or moves to the new
    /// container (PKCS#11).
    pub fixed_slot: bool,
    /// Containers that were on the token before this world provisioned it (left alone).
    pub baseline: Vec<ContainerId>,
    /// Whether what this world put on a real token is removed after the scenario: yes when
    /// the world provisioned it (simulated CA), no when it is the user's own certificate
    /// from an external CA (the renewed one stays).
    pub disposable: bool,
    /// Journal file, in this world's scratch directory (removed with the world, server key
    /// included).
    pub journal_path: PathBuf,
    _scratch: Scratch,
    /// Everything the card, the CA connection, the PIN source and the journal saw.
    pub trace: crate::trace::Trace,
    /// Whether renewals attach the card's attestation of the new key (`renew --attest`).
    pub attest: bool,
    /// Whether CMP renewals ask for implicit confirmation (`renew --implicit-confirm`).
    pub implicit_confirm: bool,
    _runtime: Option<tokio::runtime::Runtime>,
}

/// Why the world could not be built.
pub type Error = String;

impl World {
    /// A CA with `scenario` and a card (P-256 key in 9A with a certificate from the CA).
    pub fn new(scenario: &str, key: KeyAlgorithm) -> Result<Self, Error> {
        Self::with(scenario, key, CardConfig::default(), "123456")
    }

    /// The CA, served over loopback mutual TLS from its own runtime — behind a renewal
    /// gateway reaching it by `gateway` when there is one (the address is then the gateway's).
    #[allow(clippy::type_complexity)]
    fn simulated_ca(
        scenario: &str,
        gateway: Option<GatewayRoute>,
    ) -> Result<
        (
            Arc<Ca>,
            SocketAddr,
            tokio::runtime::Runtime,
            Scratch,
            Option<Arc<sim_ca::gateway::Gateway>>,
        ),
        Error,
    > {
        let clock = Clock::system();
        let scenario = Scenario::from_toml(scenario)?;
        let authority = shared_authority(&clock, scenario.ca_key_algorithm()?)?;
        let store = Store::in_memory().map_err(|e| e.to_string())?;
        let ra = match &gateway {
            Some(_) => Some(sim_ca::gateway::credential::issue(
                &authority,
                "Renewal Gateway RA",
                &["localhost"],
                sim_ca::gateway::credential::Purpose::Ra,
                clock.now(),
            )?),
            None => None,
        };
        let mut ca = Ca::new(authority, store, &scenario, clock)?;
        if let Some(ra) = &ra {
            ca = ca.with_trusted_ras(vec![ra.chain[0].clone()])?;
        }
        let ca = Arc::new(ca);
        let dir = scratch_dir()?;
        let identity = http::server_identity(&ca, &dir.0)?;
        let gateway_identity = (identity.0.clone(), identity.1.clone_key());
        let config = http::tls_config(&ca, identity)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = runtime.block_on(loopback_listener())?;
        let mut addr = listener.local_addr().map_err(|e| e.to_string())?;
        runtime.spawn(http::serve_https(
            Arc::clone(&ca) as Arc<dyn sim_ca::backend::Backend>,
            listener,
            config,
            http::HttpLimits::default(),
        ));
        let mut in_front = None;
        if let (Some(setting), Some(ra)) = (gateway, ra) {
            let gateway = gateway_in_front(&ca, &scenario, addr, ra, setting)?;
            in_front = Some(Arc::clone(&gateway));
            let listener = runtime.block_on(loopback_listener())?;
            addr = listener.local_addr().map_err(|e| e.to_string())?;
            let config = http::tls_config_for(
                &[
                    ca.authority().root.cert.clone(),
                    ca.authority().issuing.cert.clone(),
                ],
                ca.clock(),
                gateway_identity,
            )?;
            runtime.spawn(http::serve_https(
                gateway as Arc<dyn sim_ca::backend::Backend>,
                listener,
                config,
                http::HttpLimits::default(),
            ));
        }
        Ok((ca, addr, runtime, dir, in_front))
    }

    /// Like [`World::new`] with a card configuration and the PIN the user types.
    pub fn with(
        scenario: &str,
        key: KeyAlgorithm,
        card: CardConfig,
        pin: &str,
    ) -> Result<Self, Error> {
        Self::with_applet(
            scenario,
            key,
            PivApplet::new(&card).map_err(|e| e.to_string())?,
            pin,
        )
    }

    /// [`World::with`] on a card the caller set up (a PIN-protected management key, ...).
    pub fn with_applet(
        scenario: &str,
        key: KeyAlgorithm,
        applet: PivApplet,
        pin: &str,
    ) -> Result<Self, Error> {
        Self::routed(scenario, key, applet, pin, None)
    }

    /// [`World::with_applet`], the client reaching the CA through a renewal gateway (sim-ca's,
    /// with an in-memory store) that reaches it by `gateway`; `None` goes direct.
    pub fn routed(
        scenario: &str,
        key: KeyAlgorithm,
        applet: PivApplet,
        pin: &str,
        gateway: Option<GatewayRoute>,
    ) -> Result<Self, Error> {
        let (ca, addr, runtime, dir, gateway) = Self::simulated_ca(scenario, gateway)?;
        let card = Arc::new(Mutex::new(SimCard::new(applet)));
        let pins = Arc::new(CountingPinSource::new(StaticPin::new(pin)));
        let trace = crate::trace::Trace::default();
        let piv = PivToken::new(
            crate::trace::RecordingTransport {
                inner: SimTransport::new(Arc::clone(&card)),
                trace: trace.clone(),
            },
            Arc::new(crate::trace::RecordingPins {
                inner: pins.clone(),
                trace: trace.clone(),
            }),
            // What `renew` does by default: the card's PIN-protected key if ykman's data
            // flags one, else the factory key; its algorithm from GET METADATA.
            ManagementKey::Auto,
        );
        let token: SharedToken = Arc::new(Mutex::new(Box::new(piv)));
        let mut world = Self::assemble(
            (ca, addr, runtime),
            dir,
            Some(card),
            token,
            pins,
            trace,
            key,
            Some(ContainerId("9a".into())),
        )?;
        world.gateway = gateway;
        Ok(world)
    }

    /// A world around a token this harness did not create (a real PKCS#11 token): a new key
    /// and a certificate from the simulated CA are provisioned into a new container, and only
    /// containers created from then on are judged.
    pub fn with_token(
        scenario: &str,
        key: KeyAlgorithm,
        token: SharedToken,
        pins: Arc<CountingPinSource<StaticPin>>,
        trace: crate::trace::Trace,
    ) -> Result<Self, Error> {
        let (ca, addr, runtime, dir, gateway) = Self::simulated_ca(scenario, None)?;
        let mut world = Self::assemble(
            (ca, addr, runtime),
            dir,
            None,
            token,
            pins,
            trace,
            key,
            None,
        )?;
        world.gateway = gateway;
        Ok(world)
    }

    /// A world around an external CA and a token that already holds a certificate from it
    /// in `primary` (followed from scenario to scenario through the shared handle). Nothing
    /// is provisioned; only containers other than those present now are judged, and the
    /// certificate left in the end is the user's.
    #[allow(clippy::too_many_arguments)]
    pub fn external(
        external: &ExternalCa,
        token: SharedToken,
        card: Option<Arc<Mutex<SimCard>>>,
        pins: Arc<CountingPinSource<StaticPin>>,
        trace: crate::trace::Trace,
        primary: Arc<Mutex<ContainerId>>,
        fixed_slot: bool,
    ) -> Result<Self, Error> {
        let current = primary.lock().map_err(|_| "lock")?.clone();
        let containers = token
            .lock()
            .map_err(|_| "token lock")?
            .containers()
            .map_err(|e| e.to_string())?;
        let (_, old_cert) = certificate_from(&containers, &current, &external.anchors)?;
        let baseline = containers
            .iter()
            .filter(|c| c.id != current)
            .map(|c| c.id.clone())
            .collect();
        let scratch = scratch_dir()?;
        trace.clear();
        Ok(Self {
            ca: None,
            gateway: None,
            base_url: external.base_url.trim_end_matches('/').to_string(),
            anchors: external.anchors.clone(),
            card,
            token,
            pins,
            old_cert,
            primary,
            fixed_slot,
            baseline,
            disposable: false,
            journal_path: scratch.0.join("journal.jsonl"),
            _scratch: scratch,
            trace,
            attest: false,
            implicit_confirm: false,
            _runtime: None,
        })
    }

    /// Provisions the token and puts the world together.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        (ca, addr, runtime): (Arc<Ca>, SocketAddr, tokio::runtime::Runtime),
        dir: Scratch,
        card: Option<Arc<Mutex<SimCard>>>,
        token: SharedToken,
        pins: Arc<CountingPinSource<StaticPin>>,
        trace: crate::trace::Trace,
        key: KeyAlgorithm,
        fixed_slot: Option<ContainerId>,
    ) -> Result<Self, Error> {
        let (baseline, primary, old_cert) = {
            let mut t = token.lock().map_err(|_| "token lock")?;
            let baseline: Vec<ContainerId> = t
                .containers()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|c| c.id)
                .collect();
            // Key on the token, certificate from the CA (on a PIV card no PIN is needed).
            let first = t.generate(key).map_err(|e| e.to_string())?;
            let spki = first.public_key.clone().ok_or("no public key")?;
            let old_cert = renewal_client::sample::issue_user_certificate(
                &ca.authority().issuing.key,
                &ca.authority().issuing.cert,
                &spki,
                ca.clock().now(),
            )
            .map_err(|e| e.to_string())?;
            // The CA knows what its key signed, as a real CA's database does.
            ca.register_issued(&old_cert)?;
            t.install_certificate(&first.id, old_cert.der())
                .map_err(|e| e.to_string())?;
            let primary = match &fixed_slot {
                Some(slot) => t.supersede(slot, &first.id).map_err(|e| e.to_string())?,
                None => first.id,
            };
            (baseline, primary, old_cert)
        };
        trace.clear();
        let anchors = vec![
            ca.authority().issuing.cert.clone(),
            ca.authority().root.cert.clone(),
        ];
        Ok(Self {
            ca: Some(ca),
            gateway: None,
            base_url: format!("https://localhost:{}", addr.port()),
            anchors,
            disposable: card.is_none(),
            card,
            token,
            pins,
            old_cert,
            primary: Arc::new(Mutex::new(primary)),
            fixed_slot: fixed_slot.is_some(),
            baseline,
            journal_path: dir.0.join("journal.jsonl"),
            _scratch: dir,
            trace,
            attest: false,
            implicit_confirm: false,
            _runtime: Some(runtime),
        })
    }

    /// The current certificate's container.
    pub fn primary(&self) -> ContainerId {
        self.primary
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The CA certificates a client trusts.
    pub fn anchors(&self) -> Vec<Retained<Certificate>> {
        self.anchors.clone()
    }

    /// A fresh connection to the CA with the card's 9A key as TLS client key.
    pub fn service(&self, mode: Mode) -> Result<HttpsService, Error> {
        self.service_at(&self.base_url, mode)
    }

    /// [`World::service`] to another server at `base_url` (a third party's, a test's own),
    /// trusting this world's CA and authenticating with the card's certificate.
    pub fn service_at(&self, base_url: &str, mode: Mode) -> Result<HttpsService, Error> {
        // The TLS key is the old certificate's, whatever its type.
        let spki = self
            .old_cert
            .value()
            .tbs_certificate()
            .subject_public_key_info();
        let algorithm = renewal_client::cmc::PublicKey::from_spki(spki)
            .ok()
            .as_ref()
            .and_then(KeyAlgorithm::of)
            .ok_or("the card's certificate has a key type renewal does not use")?;
        HttpsService::new(
            HttpsConfig {
                base_url: base_url.to_string(),
                trust_anchors: self.anchors().iter().map(|c| c.der().to_vec()).collect(),
                mode,
                timeout: Duration::from_secs(10),
            },
            Arc::clone(&self.token),
            self.primary(),
            algorithm,
            &self.old_cert,
        )
        .map_err(|e| e.to_string())
    }

    /// Renewal settings, `max_polls` polls: waiting is virtual with the simulated CA (it
    /// advances the CA's clock) and real with an external one.
    pub fn config(
        &self,
        mode: Mode,
        max_polls: u32,
        crash_after: Option<CrashPoint>,
    ) -> RenewalConfig {
        let sleep: Box<dyn FnMut(Duration)> = match &self.ca {
            Some(ca) => {
                let ca = Arc::clone(ca);
                Box::new(move |d| ca.clock().advance(d))
            }
            None => Box::new(std::thread::sleep),
        };
        let now: Box<dyn Fn() -> std::time::SystemTime> = match &self.ca {
            Some(ca) => {
                let ca = Arc::clone(ca);
                Box::new(move || ca.clock().now())
            }
            None => Box::new(std::time::SystemTime::now),
        };
        RenewalConfig {
            old: self.primary(),
            mode,
            template: None,
            trust_anchors: self.anchors(),
            max_polls,
            sleep,
            crash_after,
            retry: renewal_client::client::processor::RetryPolicy::default(),
            attest: self.attest,
            implicit_confirm: self.implicit_confirm,
            now,
        }
    }

    /// The journal, its records traced.
    pub fn journal(&self) -> Result<Journal, Error> {
        let mut journal = Journal::open(&self.journal_path).map_err(|e| e.to_string())?;
        let trace = self.trace.clone();
        journal.observe(Box::new(move |r| {
            let failed = matches!(
                r,
                renewal_client::client::journal::Record::RollbackIntent { .. }
            );
            trace.push(
                crate::trace::Lane::Client,
                crate::trace::step_text(r),
                false,
                failed,
            )
        }));
        Ok(journal)
    }

    /// A connection to the CA whose exchanges are traced.
    pub fn traced_service(
        &self,
        mode: Mode,
    ) -> Result<crate::trace::RecordingService<HttpsService>, Error> {
        Ok(crate::trace::RecordingService {
            inner: self.service(mode)?,
            trace: self.trace.clone(),
        })
    }

    /// Faults for the next operations.
    pub fn set_faults(&self, plan: FaultPlan) {
        if let Some(Ok(mut card)) = self.card.as_ref().map(|c| c.lock()) {
            card.set_faults(plan);
        }
    }

    /// The invariant: of the containers this world created, exactly one is left, with a key
    /// and a certificate for that key issued by the CA — in 9A on a PIV card. Returns that
    /// certificate (and remembers where it is).
    pub fn check_invariant(&self) -> Result<Retained<Certificate>, Error> {
        if let Some(Ok(mut card)) = self.card.as_ref().map(|c| c.lock())
            && card.is_removed()
        {
            card.reinsert();
        }
        let containers: Vec<_> = {
            let mut token = self.token.lock().map_err(|_| "lock")?;
            token.containers().map_err(|e| e.to_string())?
        }
        .into_iter()
        .filter(|c| !self.baseline.contains(&c.id))
        .collect();
        let [only] = containers.as_slice() else {
            return Err(format!(
                "expected exactly one container, found {containers:?}"
            ));
        };
        if self.fixed_slot && only.id != self.primary() {
            return Err(format!(
                "the certificate is in {}, not {}",
                only.id,
                self.primary()
            ));
        }
        let cert =
            Retained::<Certificate>::from_der(only.certificate.as_deref().ok_or("no certificate")?)
                .map_err(|e| e.to_string())?;
        if only.public_key.as_ref()
            != Some(cert.value().tbs_certificate().subject_public_key_info())
        {
            return Err(format!("the certificate in {} is not for its key", only.id));
        }
        if let Ok(mut p) = self.primary.lock() {
            *p = only.id.clone();
        }
        let from_ca = match &self.ca {
            Some(ca) => ca.authority().issued_by_us(&cert),
            None => chains_to(&cert, &self.anchors),
        };
        if !from_ca {
            return Err(format!("the certificate in {} is not from the CA", only.id));
        }
        Ok(cert)
    }
}

/// The container `id` among `containers` and its certificate, which must chain to `anchors`:
/// what an external CA's run starts from.
pub fn certificate_from<'a>(
    containers: &'a [Container],
    id: &ContainerId,
    anchors: &[Retained<Certificate>],
) -> Result<(&'a Container, Retained<Certificate>), Error> {
    let holder = containers
        .iter()
        .find(|c| &c.id == id)
        .ok_or_else(|| format!("container {id} is empty"))?;
    let cert = Retained::<Certificate>::from_der(
        holder
            .certificate
            .as_deref()
            .ok_or_else(|| format!("container {id} holds no certificate"))?,
    )
    .map_err(|e| format!("the certificate in {id}: {e}"))?;
    if !chains_to(&cert, anchors) {
        return Err(format!(
            "the certificate in {id} was not issued by a CA in --ca-cert"
        ));
    }
    Ok((holder, cert))
}

/// Whether `cert` is one of `anchors` or signed by one of them (what the client itself
/// accepts).
fn chains_to(cert: &Retained<Certificate>, anchors: &[Retained<Certificate>]) -> bool {
    anchors
        .iter()
        .any(|a| a == cert || renewal_client::x509::verify_issued_by(cert, a.value()).is_ok())
}

/// One world's directory for its journal and TLS files (the server's private key among them),
/// removed when the world goes, whichever way it goes.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback listener on a port the OS picks, never one of vpcd's: a world's server there
/// would stop a pcscd started later in the same test from serving the card. The refused
/// listeners stay bound until one is accepted, so the OS does not offer them again.
async fn loopback_listener() -> Result<tokio::net::TcpListener, Error> {
    let mut refused = Vec::new();
    loop {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        if !sim_card::harness::VPCD_PORTS.contains(&port) {
            return Ok(listener);
        }
        refused.push(listener);
    }
}

/// A fresh directory for one world. The counter makes it unique within the process: two
/// threads building worlds in the same clock tick got the same name, and the first world to
/// end removed the other's journal under it (a load run saw "journal.jsonl: No such file").
fn scratch_dir() -> Result<Scratch, Error> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cardrenew-world-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(Scratch(dir))
}

/// One CA hierarchy per key type for the whole process, duplicated for each world: every
/// scenario gets its own CA state (store, rules, clock) over the same keys, and an RSA CA's
/// key generation is paid once instead of per scenario.
fn shared_authority(clock: &Clock, key: KeyAlgorithm) -> Result<Authority, Error> {
    static MADE: Mutex<Vec<(KeyAlgorithm, Authority)>> = Mutex::new(Vec::new());
    let mut made = MADE.lock().map_err(|_| "CA cache lock poisoned")?;
    if let Some((_, authority)) = made.iter().find(|(k, _)| *k == key) {
        return Ok(authority.duplicate()?);
    }
    let authority = Authority::generate_with(clock.now(), key)?;
    let copy = authority.duplicate()?;
    made.push((key, authority));
    Ok(copy)
}
