//! One renewal world: a CA over loopback mutual TLS, a virtual card with a certificate from
//! it, a counting PIN source, a journal — and the checks every scenario ends with.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use renewal_core::{
    client::{
        Mode,
        https::{HttpsConfig, HttpsService, SharedToken},
        journal::Journal,
        processor::{CrashPoint, RenewalConfig},
    },
    cmc::Retained,
    token::{
        ContainerId, KeyAlgorithm, Token,
        pin::{CountingPinSource, StaticPin},
        piv::{ManagementKey, PivToken},
        transport::SimTransport,
    },
};
use sim_ca::{Ca, authority::Authority, clock::Clock, http, scenario::Scenario, store::Store};
use sim_card::{CardConfig, FaultPlan, PivApplet, SimCard};
use x509_cert::Certificate;

/// Everything a scenario touches.
pub struct World {
    /// The CA.
    pub ca: Arc<Ca>,
    /// Its HTTPS address.
    pub addr: SocketAddr,
    /// The card.
    pub card: Arc<Mutex<SimCard>>,
    /// The token over the card, shared by TLS and the driver.
    pub token: SharedToken,
    /// PIN prompts.
    pub pins: Arc<CountingPinSource<StaticPin>>,
    /// The certificate being renewed.
    pub old_cert: Retained<Certificate>,
    /// Journal file.
    pub journal_path: PathBuf,
    /// Everything the card, the CA connection, the PIN source and the journal saw.
    pub trace: crate::trace::Trace,
    _runtime: tokio::runtime::Runtime,
}

/// Why the world could not be built.
pub type Error = String;

impl World {
    /// A CA with `scenario` and a card (P-256 key in 9A with a certificate from the CA).
    pub fn new(scenario: &str, key: KeyAlgorithm) -> Result<Self, Error> {
        Self::with(scenario, key, CardConfig::default(), "123456")
    }

    /// Like [`World::new`] with a card configuration and the PIN the user types.
    pub fn with(
        scenario: &str,
        key: KeyAlgorithm,
        card: CardConfig,
        pin: &str,
    ) -> Result<Self, Error> {
        let clock = Clock::system();
        let authority = Authority::generate(clock.now())?;
        let scenario = Scenario::from_toml(scenario)?;
        let store = Store::in_memory().map_err(|e| e.to_string())?;
        let ca = Arc::new(Ca::new(authority, store, &scenario, clock)?);
        let dir = std::env::temp_dir().join(format!(
            "cardrenew-world-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let identity = http::server_identity(&ca, &dir)?;
        let config = http::tls_config(&ca, identity)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        runtime.spawn(http::serve_https(
            Arc::clone(&ca),
            listener,
            config,
            http::HttpLimits::default(),
        ));

        let card = Arc::new(Mutex::new(SimCard::new(
            PivApplet::new(&card).map_err(|e| e.to_string())?,
        )));
        let pins = Arc::new(CountingPinSource::new(StaticPin::new(pin)));
        let trace = crate::trace::Trace::default();
        let mut piv = PivToken::new(
            crate::trace::RecordingTransport {
                inner: SimTransport::new(Arc::clone(&card)),
                trace: trace.clone(),
            },
            Arc::new(crate::trace::RecordingPins {
                inner: pins.clone(),
                trace: trace.clone(),
            }),
            ManagementKey::default_3des(),
        );
        // Provision 9A: key on the card, certificate from the CA (no PIN needed for that).
        let first = piv.generate(key).map_err(|e| e.to_string())?;
        let spki = first.public_key.clone().ok_or("no public key")?;
        let old_cert = renewal_core::sample::issue_user_certificate(
            &ca.authority().issuing.key,
            &ca.authority().issuing.cert,
            &spki,
            ca.clock().now(),
        )
        .map_err(|e| e.to_string())?;
        piv.install_certificate(&first.id, old_cert.der())
            .map_err(|e| e.to_string())?;
        piv.supersede(&ContainerId("9a".into()), &first.id)
            .map_err(|e| e.to_string())?;
        let token: SharedToken = Arc::new(Mutex::new(Box::new(piv)));
        trace.clear();
        Ok(Self {
            ca,
            addr,
            card,
            token,
            pins,
            old_cert,
            journal_path: dir.join("journal.jsonl"),
            trace,
            _runtime: runtime,
        })
    }

    /// The CA certificates a client trusts.
    pub fn anchors(&self) -> Vec<Retained<Certificate>> {
        vec![
            self.ca.authority().issuing.cert.clone(),
            self.ca.authority().root.cert.clone(),
        ]
    }

    /// A fresh connection to the CA with the card's 9A key as TLS client key.
    pub fn service(&self, mode: Mode) -> Result<HttpsService, Error> {
        let algorithm = renewal_core::token::KeyAlgorithm::EcP256;
        let key = self
            .old_cert
            .value()
            .tbs_certificate()
            .subject_public_key_info()
            .algorithm
            .oid;
        let algorithm = if key == renewal_core::cmc::oids::RSA_ENCRYPTION {
            KeyAlgorithm::Rsa2048
        } else {
            algorithm
        };
        HttpsService::new(
            HttpsConfig {
                base_url: format!("https://localhost:{}", self.addr.port()),
                trust_anchors: self.anchors().iter().map(|c| c.der().to_vec()).collect(),
                mode,
                timeout: Duration::from_secs(10),
            },
            Arc::clone(&self.token),
            ContainerId("9a".into()),
            algorithm,
            &self.old_cert,
        )
        .map_err(|e| e.to_string())
    }

    /// Renewal settings: virtual waiting (advances the CA's clock), `max_polls` polls.
    pub fn config(
        &self,
        mode: Mode,
        max_polls: u32,
        crash_after: Option<CrashPoint>,
    ) -> RenewalConfig {
        let ca = Arc::clone(&self.ca);
        RenewalConfig {
            old: ContainerId("9a".into()),
            mode,
            template: None,
            trust_anchors: self.anchors(),
            max_polls,
            sleep: Box::new(move |d| ca.clock().advance(d)),
            crash_after,
        }
    }

    /// The journal, its records traced.
    pub fn journal(&self) -> Result<Journal, Error> {
        let mut journal = Journal::open(&self.journal_path).map_err(|e| e.to_string())?;
        let trace = self.trace.clone();
        journal.observe(Box::new(move |r| {
            let failed = matches!(
                r,
                renewal_core::client::journal::Record::RollbackIntent { .. }
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
        if let Ok(mut card) = self.card.lock() {
            card.set_faults(plan);
        }
    }

    /// The invariant: the card holds exactly one container, 9A, with a key and a certificate
    /// for that key issued by the CA. Returns that certificate.
    pub fn check_invariant(&self) -> Result<Retained<Certificate>, Error> {
        if let Ok(mut card) = self.card.lock()
            && card.is_removed()
        {
            card.reinsert();
        }
        let containers = {
            let mut token = self.token.lock().map_err(|_| "lock")?;
            token.containers().map_err(|e| e.to_string())?
        };
        let [only] = containers.as_slice() else {
            return Err(format!(
                "expected exactly one container, found {containers:?}"
            ));
        };
        if only.id.0 != "9a" {
            return Err(format!("the certificate is in {}, not 9a", only.id));
        }
        let cert = Retained::<Certificate>::from_der(
            only.certificate.as_deref().ok_or("9a has no certificate")?,
        )
        .map_err(|e| e.to_string())?;
        if only.public_key.as_ref()
            != Some(cert.value().tbs_certificate().subject_public_key_info())
        {
            return Err("the certificate in 9a is not for the key in 9a".into());
        }
        if !self.ca.authority().issued_by_us(&cert) {
            return Err("the certificate in 9a is not from the CA".into());
        }
        Ok(cert)
    }
}
