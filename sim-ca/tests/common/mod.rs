//! Fixtures: a CA in memory and a client holding a certificate from it.
#![allow(dead_code, clippy::unwrap_used)]

use sim_ca::store::Endpoint;
use std::time::SystemTime;

use der::{Encode, asn1::BitString, asn1::OctetString};
use renewal_codec::cmc::{
    Outcome, Signer, oids,
    pki::{PkiData, TaggedRequest},
    status::CmcFailInfo,
    verify_request::RequestContent,
};
use renewal_codec::{
    cmc::{
        DigestAlgorithm, Limits, ParsedResponse, RenewalParams, Retained, SoftwareKey,
        build_renewal_request, parse_response,
    },
    sample::issue_user_certificate,
};
use sim_ca::{Ca, authority::Authority, clock::Clock, scenario::Scenario, store::Store};
use x509_cert::Certificate;

/// 16 random bytes: a CMP transactionID or nonce.
pub fn rand16() -> [u8; 16] {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
}

/// A CMP key update request for `old` (protected by `protect`) onto `new`, addressed to `ca`'s
/// issuing CA, in transaction `tid` with a fresh nonce.
pub fn cmp_key_update(
    ca: &Ca,
    old: &Retained<Certificate>,
    protect: &SoftwareKey,
    new: &SoftwareKey,
    tid: [u8; 16],
    implicit: bool,
) -> Vec<u8> {
    let params = renewal_codec::cmp::build::KeyUpdate {
        old,
        recipient: ca
            .authority()
            .issuing
            .cert
            .value()
            .tbs_certificate()
            .subject()
            .clone(),
        transaction_id: tid,
        sender_nonce: rand16(),
        time: now(),
        implicit_confirm: implicit,
    };
    renewal_codec::cmp::build::key_update_request(&params, protect, new).unwrap()
}

pub fn now() -> SystemTime {
    renewal_codec::sample::fixed_now()
}

pub fn ca_with(scenario: &str) -> Ca {
    ca_with_key(scenario, renewal_codec::cmc::KeyAlgorithm::Rsa2048)
}

/// [`ca_with`] whose root and issuing keys are of `algorithm`.
pub fn ca_with_key(scenario: &str, algorithm: renewal_codec::cmc::KeyAlgorithm) -> Ca {
    let clock = Clock::fixed(now());
    let authority = Authority::generate_with(clock.now(), algorithm).unwrap();
    Ca::new(
        authority,
        Store::in_memory().unwrap(),
        &Scenario::from_toml(scenario).unwrap(),
        clock,
    )
    .unwrap()
}

pub fn ca() -> Ca {
    ca_with("")
}

/// A smart-card user with a certificate from `ca` and a fresh key to renew onto.
pub struct Client {
    pub old_key: SoftwareKey,
    pub old_cert: Retained<Certificate>,
    pub new_key: SoftwareKey,
}

impl Client {
    pub fn new(ca: &Ca) -> Self {
        Self::with_keys(
            ca,
            SoftwareKey::generate_p256().unwrap(),
            SoftwareKey::generate_p256().unwrap(),
        )
    }

    pub fn with_keys(ca: &Ca, old_key: SoftwareKey, new_key: SoftwareKey) -> Self {
        use renewal_codec::cmc::Signer;
        let old_cert = issue_user_certificate(
            &ca.authority().issuing.key,
            &ca.authority().issuing.cert,
            old_key.public_key(),
            now(),
        )
        .unwrap();
        Self {
            old_key,
            old_cert,
            new_key,
        }
    }

    pub fn params() -> RenewalParams {
        let mut p = RenewalParams::random().unwrap();
        p.digest = DigestAlgorithm::Sha256;
        p
    }

    pub fn request(&self) -> Vec<u8> {
        self.request_with(Self::params())
    }

    /// A request for a fresh new key (another attempt by the same user, as a client makes
    /// after a rollback).
    pub fn request_for_another_key(&self) -> Vec<u8> {
        self.request_for_key(&SoftwareKey::generate_p256().unwrap(), Self::params())
    }

    /// A simplereenroll PKCS#10 for a fresh new key (RFC 7030 §4.2.2).
    pub fn reenrollment_for_another_key(&self) -> Vec<u8> {
        build_renewal_request(
            &self.old_cert,
            &self.old_key,
            &SoftwareKey::generate_p256().unwrap(),
            &Self::params(),
        )
        .unwrap()
        .pkcs10_der
    }

    /// A request renewing onto `key` with `params`.
    pub fn request_for_key(&self, key: &SoftwareKey, params: RenewalParams) -> Vec<u8> {
        build_renewal_request(&self.old_cert, &self.old_key, key, &params)
            .unwrap()
            .der
    }

    pub fn request_with(&self, params: RenewalParams) -> Vec<u8> {
        build_renewal_request(&self.old_cert, &self.old_key, &self.new_key, &params)
            .unwrap()
            .der
    }
}

pub fn parse(body: &[u8]) -> ParsedResponse {
    parse_response(body, &Limits::default()).unwrap()
}

/// Submits `request` as `client` and returns (fail info, status string).
pub fn rejected(ca: &Ca, client: &Client, request: &[u8]) -> (Option<CmcFailInfo>, String) {
    let reply = ca.handle_cmc(request, client.old_cert.der());
    let resp = parse(&reply.body);
    resp.verify_signer().unwrap();
    match resp.outcome {
        Outcome::Failed { fail_info } => (fail_info, resp.status_string.unwrap()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub fn assert_rejected(ca: &Ca, client: &Client, request: &[u8], fail: CmcFailInfo, hresult: &str) {
    let (got, text) = rejected(ca, client, request);
    assert_eq!(got, Some(fail), "{text}");
    assert!(text.starts_with(hresult), "{text}");
}

/// Rebuilds the request after changing its PKCS#10 (re-signed by `pkcs10_key`) and re-signs
/// the CMS layer with the client's keys, so the mutation is the only fault.
pub fn mutated(
    client: &Client,
    pkcs10_key: &SoftwareKey,
    f: impl FnOnce(&mut x509_cert::request::CertReq),
) -> Vec<u8> {
    mutated_signed_by(client, client, pkcs10_key, f)
}

/// Like `mutated`, with the CMS layer signed by `signers`' keys.
pub fn mutated_signed_by(
    client: &Client,
    signers: &Client,
    pkcs10_key: &SoftwareKey,
    f: impl FnOnce(&mut x509_cert::request::CertReq),
) -> Vec<u8> {
    let parsed = renewal_codec::cmc::parse_request(&client.request(), &Default::default()).unwrap();
    let RequestContent::Cmc(mut pki) = parsed.content else {
        panic!()
    };
    let TaggedRequest::Tcr(tcr) = &mut pki.req_sequence[0] else {
        panic!()
    };
    let mut req = tcr.certification_request.value().clone();
    f(&mut req);
    let sig = pkcs10_key.sign(&req.info.to_der().unwrap()).unwrap();
    req.signature = BitString::from_bytes(&sig).unwrap();
    tcr.certification_request = Retained::from_value(req).unwrap();
    sign(signers, &pki)
}

pub fn sign(client: &Client, pki: &PkiData) -> Vec<u8> {
    sign_with(client, pki, client.new_key.public_key(), &client.new_key)
}

/// Signs `pki` as a renewal request whose first signer is named by `first_spki`'s key
/// identifier and signed by `first` (whatever key that really is), the second by the old key.
pub fn sign_with(
    client: &Client,
    pki: &PkiData,
    first_spki: &spki::SubjectPublicKeyInfoOwned,
    first: &dyn Signer,
) -> Vec<u8> {
    use cms::{
        cert::IssuerAndSerialNumber, content_info::CmsVersion, signed_data::SignerIdentifier,
    };
    let tbs = client.old_cert.value().tbs_certificate();
    let new_sid =
        SignerIdentifier::SubjectKeyIdentifier(x509_cert::ext::pkix::SubjectKeyIdentifier(
            OctetString::new(renewal_codec::cmc::crypto::key_identifier(first_spki)).unwrap(),
        ));
    let old_sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    renewal_codec::cmc::request::sign_content(
        oids::ID_CCT_PKI_DATA,
        &pki.to_der().unwrap(),
        renewal_codec::cmc::DigestAlgorithm::Sha256,
        &[
            (CmsVersion::V3, new_sid, first),
            (CmsVersion::V1, old_sid, &client.old_key),
        ],
        vec![
            renewal_codec::cmc::signed_data::CertificateChoice::Certificate(
                client.old_cert.clone(),
            ),
        ],
    )
    .unwrap()
    .to_content_info_der()
    .unwrap()
}

/// An upstream sim-ca served over loopback HTTPS that trusts one RA, and what a gateway in
/// front of it needs: `renew` → gateway → upstream, with the gateway called in-process.
pub struct Upstream {
    pub ca: std::sync::Arc<Ca>,
    pub addr: std::net::SocketAddr,
    ra_chain: Vec<Retained<Certificate>>,
    ra_key_pem: String,
    /// The CA's scenario: a gateway in front of it is configured with the same policy
    /// (grace, profile, pending cap), as a deployment would be.
    scenario: Scenario,
    dir: std::path::PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Upstream {
    /// An upstream CA with `scenario`, trusting a fresh RA credential it issued.
    pub fn start(scenario: &str) -> Self {
        Self::start_with_key(scenario, renewal_codec::cmc::KeyAlgorithm::Rsa2048)
    }

    /// [`Upstream::start`] with CA keys of `algorithm`.
    pub fn start_with_key(scenario: &str, algorithm: renewal_codec::cmc::KeyAlgorithm) -> Self {
        let base = ca_with_key(scenario, algorithm);
        let ra = sim_ca::gateway::credential::issue(
            base.authority(),
            "Renewal Gateway RA",
            &["localhost"],
            sim_ca::gateway::credential::Purpose::Ra,
            now(),
        )
        .unwrap();
        let ca = std::sync::Arc::new(base.with_trusted_ras(vec![ra.chain[0].clone()]).unwrap());
        let dir = std::env::temp_dir().join(format!(
            "sim-ca-upstream-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let identity = sim_ca::http::server_identity(&ca, &dir).unwrap();
        let config = sim_ca::http::tls_config(&ca, identity).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(sim_ca::http::serve_https(
            std::sync::Arc::clone(&ca) as std::sync::Arc<dyn sim_ca::backend::Backend>,
            listener,
            config,
            sim_ca::http::HttpLimits::default(),
        ));
        Self {
            ca,
            addr,
            ra_key_pem: ra.key.to_pkcs8_pem().unwrap().to_string(),
            ra_chain: ra.chain,
            scenario: Scenario::from_toml(scenario).unwrap(),
            dir,
            runtime: Some(runtime),
        }
    }

    /// A gateway instance in front of this upstream, on `store`, reaching it at `url` (the
    /// upstream's own address when `None`), forwarding full CMC with `protocol`.
    pub fn gateway_at(
        &self,
        store: Store,
        url: Option<&str>,
        protocol: sim_ca::gateway::upstream::CmcProtocol,
    ) -> sim_ca::gateway::Gateway {
        self.gateway_with_timeout(store, url, protocol, std::time::Duration::from_secs(10))
    }

    /// [`Upstream::gateway_at`] with the time one upstream exchange may take.
    pub fn gateway_with_timeout(
        &self,
        store: Store,
        url: Option<&str>,
        protocol: sim_ca::gateway::upstream::CmcProtocol,
        timeout: std::time::Duration,
    ) -> sim_ca::gateway::Gateway {
        use sim_ca::gateway::upstream::Upstream as Client;
        let cas = vec![
            self.ca.authority().issuing.cert.clone(),
            self.ca.authority().root.cert.clone(),
        ];
        let key = SoftwareKey::from_pem_or_der(self.ra_key_pem.as_bytes()).unwrap();
        let own = format!("https://localhost:{}", self.addr.port());
        let client = Client::new(
            url.unwrap_or(&own),
            protocol,
            &cas,
            &key,
            &self.ra_chain,
            timeout,
        )
        .unwrap();
        self.gateway_over(store, Box::new(client))
    }

    /// A gateway in front of this upstream, forwarding over EST fullcmc.
    pub fn gateway(&self, store: Store) -> sim_ca::gateway::Gateway {
        self.gateway_at(store, None, sim_ca::gateway::upstream::CmcProtocol::Fullcmc)
    }

    /// A user with a certificate from the upstream CA (recorded in its database, as a CA
    /// records what it issues).
    pub fn user(&self) -> Client {
        let user = Client::new(&self.ca);
        self.ca.register_issued(&user.old_cert).unwrap();
        user
    }
}

impl Upstream {
    /// The RA's certificate chain and key, as a gateway holds them.
    pub fn ra_credential(&self) -> (Vec<Retained<Certificate>>, SoftwareKey) {
        (
            self.ra_chain.clone(),
            SoftwareKey::from_pem_or_der(self.ra_key_pem.as_bytes()).unwrap(),
        )
    }

    /// The RA certificate the gateway presents (DER).
    pub fn ra_certificate(&self) -> Vec<u8> {
        self.ra_chain[0].der().to_vec()
    }

    /// A gateway in front of `backend` (any CA the gateway can reach), trusting this
    /// upstream's CA certificates.
    pub fn gateway_over(
        &self,
        store: Store,
        backend: Box<dyn sim_ca::gateway::ca_backend::CaBackend>,
    ) -> sim_ca::gateway::Gateway {
        use sim_ca::gateway::{Gateway, Policy, RaCredential};
        let cas = vec![
            self.ca.authority().issuing.cert.clone(),
            self.ca.authority().root.cert.clone(),
        ];
        Gateway::new(
            Policy {
                client_cas: vec![self.ca.authority().issuing.cert.clone()],
                upstream_cas: cas,
                templates: self.ca.templates().clone(),
                grace: std::time::Duration::from_secs(u64::from(self.scenario.grace_days) * 86400),
                profile: self.scenario.profile,
                retry_after: 7,
                max_pending_per_identity: self.scenario.max_pending_per_identity,
            },
            RaCredential {
                chain: self.ra_chain.clone(),
                key: SoftwareKey::from_pem_or_der(self.ra_key_pem.as_bytes()).unwrap(),
            },
            backend,
            store,
            self.ca.clock().clone(),
        )
        .unwrap()
    }

    /// A gateway in front of this upstream's simulated authority, in process (no socket).
    pub fn gateway_local(&self, store: Store) -> sim_ca::gateway::Gateway {
        self.gateway_over(
            store,
            Box::new(sim_ca::gateway::ca_backend::SimulatedAuthority::new(
                std::sync::Arc::clone(&self.ca),
                self.ra_certificate(),
            )),
        )
    }
}

/// An upstream that would issue whatever it gets — it keeps no transaction ids (not every CA
/// does) — modelled as sim-ca's simulated authority behind a counter: every request that
/// reaches it is counted as a certificate such a CA would have issued. Each exchange takes
/// `delay`, so that requests sent at once overlap.
pub struct IssuesWhatever {
    inner: sim_ca::gateway::ca_backend::SimulatedAuthority,
    forwards: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    delay: std::time::Duration,
}

impl IssuesWhatever {
    /// In front of `upstream`'s authority; `forwards` counts what reaches it.
    pub fn new(
        upstream: &Upstream,
        forwards: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        delay: std::time::Duration,
    ) -> Self {
        Self {
            inner: sim_ca::gateway::ca_backend::SimulatedAuthority::new(
                std::sync::Arc::clone(&upstream.ca),
                upstream.ra_certificate(),
            ),
            forwards,
            delay,
        }
    }
}

impl sim_ca::gateway::ca_backend::CaBackend for IssuesWhatever {
    fn cmc(
        &self,
        wrapped: &[u8],
        pending: Option<u64>,
    ) -> Result<sim_ca::gateway::ca_backend::CmcAnswer, sim_ca::gateway::ca_backend::Failure> {
        self.forwards
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.inner.cmc(wrapped, pending)
    }

    fn cmp_message(&self, message: &[u8]) -> Result<Vec<u8>, sim_ca::gateway::ca_backend::Failure> {
        self.forwards
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.inner.cmp_message(message)
    }
}

/// Sends the same transactionId (the same bytes, or two requests for two new keys) at the same
/// instant through `gateways` (one instance twice, or two instances on one store), each round
/// with a fresh user, against an upstream that issues whatever it gets. Returns, per round, how
/// many requests reached the upstream — a certificate each.
pub fn same_transaction_at_once(
    upstream: &Upstream,
    gateways: [&sim_ca::gateway::Gateway; 2],
    forwards: &std::sync::atomic::AtomicUsize,
    same_bytes: bool,
    rounds: usize,
) -> Vec<usize> {
    use std::sync::atomic::Ordering;
    (0..rounds)
        .map(|_| {
            let user = upstream.user();
            let params = Client::params();
            let first = user.request_with(params.clone());
            let second = if same_bytes {
                first.clone()
            } else {
                user.request_for_key(&SoftwareKey::generate_p256().unwrap(), params)
            };
            let before = forwards.load(Ordering::SeqCst);
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                for (gateway, request) in gateways.iter().zip([&first, &second]) {
                    let (barrier, tls) = (&barrier, user.old_cert.der());
                    scope.spawn(move || {
                        barrier.wait();
                        gateway.handle_cmc_at(Endpoint::FullCmc, request, tls)
                    });
                }
            });
            forwards.load(Ordering::SeqCst) - before
        })
        .collect()
}

pub mod desk;

/// A throwaway PostgreSQL cluster of a test's own (Debian's server binaries), run as its
/// owner (`postgres` when the test is root).
pub mod pg {
    use std::{path::Path, process::Command};

    /// A server binary (`initdb`, `pg_ctl`) of the newest installed PostgreSQL.
    pub fn bin(name: &str) -> Option<std::path::PathBuf> {
        std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin").join(name))
            .filter(|p| p.exists())
            .max()
    }

    /// Whether this process is root.
    pub fn root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    /// Runs a server binary with `args` as the cluster's owner; panics with its stderr.
    pub fn run(name: &str, args: &[&str]) {
        let bin = bin(name).expect("PostgreSQL server binaries");
        let mut cmd = if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Hands `path` to the cluster's owner (when root).
    pub fn own(path: &Path) {
        if root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(path)
                .status();
        }
    }
}
