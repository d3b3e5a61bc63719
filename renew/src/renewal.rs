//! The renewal commands (`run`, `policy`, `resume`, `recover`, `status`): the HTTPS service
//! and the processor's configuration built from the flags, and what each command prints.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use renewal_client::{
    client::{
        Mode,
        https::{HttpsConfig, HttpsService, read_trust_anchors},
        journal::Journal,
        processor::{self, RecoveryOutcome, RenewalConfig, RenewalError, RenewalOutcome},
    },
    cmc::{Retained, microsoft::TemplateRef},
    token::{ContainerId, KeyAlgorithm},
};
use serde_json::json;
use x509_cert::Certificate;

use crate::cli::Common;

use crate::token::{Opened, journal_path, open, prompts};

/// The container `--container` names, as the token lists it.
fn container_of(
    opened: &Opened,
    common: &Common,
) -> Result<renewal_client::token::Container, String> {
    let container = ContainerId(common.container.clone());
    let mut token = opened.token.lock().map_err(|_| "token lock poisoned")?;
    token
        .containers()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|c| c.id == container)
        .ok_or_else(|| format!("container {} is empty", common.container))
}

pub(crate) fn service(
    opened: &Opened,
    common: &Common,
    url: &str,
    anchors: &[Retained<Certificate>],
    mode: Mode,
) -> Result<HttpsService, String> {
    let old = container_of(opened, common)?;
    let cert = Retained::<Certificate>::from_der(
        old.certificate
            .as_deref()
            .ok_or("no certificate to renew")?,
    )
    .map_err(|e| e.to_string())?;
    let algorithm = old.algorithm.unwrap_or(KeyAlgorithm::EcP256);
    HttpsService::new(
        HttpsConfig {
            base_url: url.to_string(),
            trust_anchors: anchors.iter().map(|c| c.der().to_vec()).collect(),
            mode,
            timeout: Duration::from_secs(30),
        },
        Arc::clone(&opened.token),
        old.id.clone(),
        algorithm,
        &cert,
    )
    .map_err(|e| e.to_string())
}

pub(crate) fn config(
    common: &Common,
    mode: Mode,
    anchors: Vec<Retained<Certificate>>,
    template: Option<&str>,
    max_polls: u32,
    now: SystemTime,
) -> RenewalConfig {
    // The renewal's clock starts at `now` (the agent's, which `--now` may move) and runs.
    let started = Instant::now();
    RenewalConfig {
        old: ContainerId(common.container.clone()),
        mode,
        template: template.map(TemplateRef::from_user_text),
        trust_anchors: anchors,
        max_polls,
        sleep: Box::new(|d| {
            eprintln!("renew: asking the CA again in {} s", d.as_secs());
            std::thread::sleep(d)
        }),
        crash_after: None,
        retry: renewal_client::client::processor::RetryPolicy {
            attempts: common.retries,
            ..Default::default()
        },
        attest: common.attest,
        implicit_confirm: common.implicit_confirm,
        now: Box::new(move || now + started.elapsed()),
    }
}

fn report(
    common: &Common,
    result: Result<RenewalOutcome, RenewalError>,
    opened: &Opened,
) -> Result<u8, String> {
    opened.save()?;
    let (code, value) = match &result {
        Ok(RenewalOutcome::Renewed {
            container,
            certificate,
        }) => {
            let cert = Retained::<Certificate>::from_der(certificate).map_err(|e| e.to_string())?;
            let tbs = cert.value().tbs_certificate();
            eprintln!(
                "renew: renewed; the new certificate (serial {}) is in {container}",
                tbs.serial_number()
            );
            (
                0,
                json!({"outcome": "renewed", "container": container.0, "serial": tbs.serial_number().to_string(), "not_after": tbs.validity().not_after.to_string()}),
            )
        }
        Ok(RenewalOutcome::Pending) => {
            eprintln!("renew: the CA has not decided yet; run `renew resume` later");
            (3, json!({"outcome": "pending"}))
        }
        Ok(RenewalOutcome::RolledBack { reason }) => {
            eprintln!("renew: not renewed, the card is as before: {reason}");
            (
                4,
                json!({"outcome": "rolled-back", "cause": reason.kind(), "reason": reason.to_string()}),
            )
        }
        Err(e @ RenewalError::Card { .. }) => {
            eprintln!("renew: {e}");
            (5, json!({"outcome": "card-error", "error": e.to_string()}))
        }
        Err(e) => return Err(e.to_string()),
    };
    if common.json {
        let mut value = value;
        value["pin_prompts"] = json!(prompts());
        println!("{value}");
    }
    Ok(code)
}

/// The enrollment policy at `cep`, fetched over the card's TLS.
fn fetch_policies(
    opened: &Opened,
    common: &Common,
    cep: &str,
    anchors: &[Retained<Certificate>],
) -> Result<renewal_client::xcep::Policies, String> {
    let mut service = service(opened, common, cep, anchors, Mode::Wstep)?;
    service.get_policies().map_err(|e| format!("{cep}: {e}"))
}

pub fn policy(common: &Common, cep: &str, ca_cert: &Path) -> Result<u8, String> {
    let anchors = read_trust_anchors(ca_cert).map_err(|e| e.to_string())?;
    let opened = open(common)?;
    let policies = fetch_policies(&opened, common, cep, &anchors)?;
    if common.json {
        let value = json!({
            "policy_id": policies.policy_id,
            "friendly_name": policies.friendly_name,
            "next_update_hours": policies.next_update_hours,
            "templates": policies.templates.iter().map(|t| json!({
                "name": t.name, "oid": t.oid, "schema": t.schema,
                "validity_seconds": t.validity_seconds,
                "renewal_seconds": t.renewal_seconds, "cas": t.cas,
            })).collect::<Vec<_>>(),
            "cas": policies.cas.iter().map(|c| json!({
                "reference": c.reference,
                "uris": c.uris.iter().map(|u| json!({
                    "uri": u.uri, "client_authentication": u.client_authentication,
                    "priority": u.priority, "renewal_only": u.renewal_only,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{value}");
    } else {
        println!(
            "policy {} ({}), next update in {} h",
            policies.friendly_name, policies.policy_id, policies.next_update_hours
        );
        for t in &policies.templates {
            println!(
                "template {} ({}), schema {}, validity {} d, renewal period {} d, CAs {}",
                t.name,
                t.oid,
                t.schema,
                t.validity_seconds / 86400,
                t.renewal_seconds / 86400,
                t.cas
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for ca in &policies.cas {
            for u in &ca.uris {
                let auth = match u.client_authentication {
                    1 => "anonymous",
                    2 => "Kerberos",
                    4 => "user name and password",
                    8 => "certificate",
                    _ => "unknown",
                };
                println!(
                    "CA {}: {} ({auth}, priority {}{})",
                    ca.reference,
                    u.uri,
                    u.priority,
                    if u.renewal_only { ", renewal only" } else { "" }
                );
            }
        }
    }
    opened.save()?;
    Ok(0)
}

/// The CES URL and template the policy at `cep` gives for the certificate in the
/// container (or for `template`).
pub(crate) fn resolve_cep(
    opened: &Opened,
    common: &Common,
    cep: &str,
    anchors: &[Retained<Certificate>],
    template: Option<&str>,
) -> Result<(String, String), String> {
    let policies = fetch_policies(opened, common, cep, anchors)?;
    let wanted = match template {
        Some(t) => t.to_string(),
        None => {
            let cert = container_of(opened, common)?
                .certificate
                .ok_or_else(|| format!("container {} holds no certificate", common.container))?;
            let cert = Retained::<Certificate>::from_der(&cert).map_err(|e| e.to_string())?;
            let named = renewal_client::cmc::request::certificate_template(cert.value())
                .ok_or("the certificate names no template; give --template")?;
            named
                .oid
                .map(|o| o.to_string())
                .or(named.name)
                .ok_or("the certificate names no template; give --template")?
        }
    };
    let t = policies
        .template(&wanted)
        .ok_or_else(|| format!("the policy at {cep} has no template {wanted}"))?;
    let ces = policies.ces_for(t).ok_or_else(|| {
        format!(
            "the policy at {cep} names no enrollment service with certificate                  authentication for template {}",
            t.name
        )
    })?;
    eprintln!(
        "renew: policy {}: template {} ({}), renewal period {} d, enrollment service {}",
        policies.friendly_name,
        t.name,
        t.oid,
        t.renewal_seconds / 86400,
        ces.uri
    );
    Ok((ces.uri.clone(), t.oid.clone()))
}

pub fn run(
    common: &Common,
    ca: Option<&str>,
    cep: Option<&str>,
    ca_cert: &Path,
    mode: &str,
    template: Option<&str>,
    max_polls: u32,
) -> Result<u8, String> {
    let anchors = read_trust_anchors(ca_cert).map_err(|e| e.to_string())?;
    let opened = open(common)?;
    let (url, mode, template) = match (ca, cep) {
        (_, Some(cep)) => {
            let (url, oid) = resolve_cep(&opened, common, cep, &anchors, template)?;
            (url, Mode::Wstep, Some(oid))
        }
        (Some(ca), None) => (
            ca.to_string(),
            mode.parse()
                .map_err(|e: renewal_client::cmc::InvalidValue| e.to_string())?,
            template.map(str::to_string),
        ),
        (None, None) => return Err("give --ca or --cep".into()),
    };
    let (url, template) = (url.as_str(), template.as_deref());
    let mut journal = Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
    // An interrupted renewal of this card first: say what was done about it, truthfully.
    match processor::recover(&opened.token, &mut journal).map_err(|e| e.to_string())? {
        RecoveryOutcome::Clean => {}
        RecoveryOutcome::RolledBack { deleted } => {
            opened.save()?;
            let deleted: Vec<&str> = deleted.iter().map(|c| c.0.as_str()).collect();
            eprintln!(
                "renew: an interrupted renewal of this card was rolled back first (deleted: \
                 {}); starting a new one",
                if deleted.is_empty() {
                    "nothing".to_string()
                } else {
                    deleted.join(", ")
                }
            );
        }
        RecoveryOutcome::Completed { container } => {
            opened.save()?;
            eprintln!(
                "renew: an interrupted renewal of this card was completed: its new \
                 certificate is in {container}; nothing more to do"
            );
            return Ok(0);
        }
        RecoveryOutcome::Pending => {
            return Err(
                "a renewal of this card awaits the CA's answer (pending there, or its \
                 answer was lost): run `renew resume` to collect it"
                    .into(),
            );
        }
    }
    eprintln!(
        "renew: connecting to {url} with the certificate in {} ...",
        common.container
    );
    let mut service = service(&opened, common, url, &anchors, mode)?;
    let result = processor::Renewal::new(
        Arc::clone(&opened.token),
        &mut service,
        &mut journal,
        config(
            common,
            mode,
            anchors,
            template,
            max_polls,
            SystemTime::now(),
        ),
    )
    .run();
    report(common, result, &opened)
}

pub fn resume(common: &Common, url: &str, ca_cert: &Path, max_polls: u32) -> Result<u8, String> {
    let anchors = read_trust_anchors(ca_cert).map_err(|e| e.to_string())?;
    let opened = open(common)?;
    let mut journal = Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
    let mode = journal
        .current()
        .iter()
        .find_map(|r| match r {
            renewal_client::client::journal::Record::Begin { mode, .. } => Some(*mode),
            _ => None,
        })
        .ok_or("no renewal in the journal")?;
    let mut service = service(&opened, common, url, &anchors, mode)?;
    let result = processor::resume(
        Arc::clone(&opened.token),
        &mut service,
        &mut journal,
        config(common, mode, anchors, None, max_polls, SystemTime::now()),
    );
    report(common, result, &opened)
}

pub fn recover(common: &Common) -> Result<u8, String> {
    let opened = open(common)?;
    let mut journal = Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
    let outcome = processor::recover(&opened.token, &mut journal).map_err(|e| e.to_string())?;
    opened.save()?;
    let text = match &outcome {
        RecoveryOutcome::Clean => "nothing to recover".to_string(),
        RecoveryOutcome::RolledBack { deleted } => format!(
            "rolled back; deleted {}",
            deleted
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        RecoveryOutcome::Completed { container } => {
            format!("completed the renewal; the certificate is in {container}")
        }
        RecoveryOutcome::Pending => {
            "a request awaits the CA's answer (pending there, or its answer was lost): \
             run `renew resume`"
                .to_string()
        }
    };
    eprintln!("renew: {text}");
    if common.json {
        println!("{}", json!({"recovery": outcome.name()}));
    }
    Ok(if outcome == RecoveryOutcome::Pending {
        3
    } else {
        0
    })
}

pub fn status(common: &Common) -> Result<u8, String> {
    let opened = open(common)?;
    let containers = {
        let mut token = opened.token.lock().map_err(|_| "token lock poisoned")?;
        token.containers().map_err(|e| e.to_string())?
    };
    let journal = Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
    let list: Vec<_> = containers
        .iter()
        .map(|c| {
            let cert = c.certificate.as_deref().and_then(|d| Retained::<Certificate>::from_der(d).ok());
            json!({
                "container": c.id.0,
                "key": c.algorithm.map(|a| a.config_name()),
                "subject": cert.as_ref().map(|c| c.value().tbs_certificate().subject().to_string()),
                "not_after": cert.as_ref().map(|c| c.value().tbs_certificate().validity().not_after.to_string()),
            })
        })
        .collect();
    let last = journal.last().map(|r| r.kind());
    if common.json {
        println!("{}", json!({"containers": list, "journal": last}));
    } else {
        for c in &list {
            println!(
                "{}  {}  {}  until {}",
                c["container"].as_str().unwrap_or("?"),
                c["key"].as_str().unwrap_or("no key"),
                c["subject"].as_str().unwrap_or("no certificate"),
                c["not_after"].as_str().unwrap_or("-")
            );
        }
        println!("journal: {}", last.unwrap_or("empty"));
    }
    Ok(0)
}
