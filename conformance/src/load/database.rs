//! The CA's database before and after a load run: prefilled with issued certificates, and
//! checked for what one transaction per decision guarantees.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use sim_ca::store::{AuditOutcome, Endpoint, Sighting, Store};

/// Writes `n` certificates into the store at `db`, each as a real decision leaves it: the
/// certificate row, its `issued` audit record, its nonce and transaction id marked seen.
pub(super) fn prefill(db: &Path, n: u64) -> Result<(), String> {
    let store = Store::open(db).map_err(|e| e.to_string())?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs(),
    )
    .map_err(|e| e.to_string())?;
    // A certificate-sized blob: the rows weigh what real ones weigh.
    let der = vec![0x30; 640];
    store
        .atomically(|s| -> Result<(), sim_ca::store::StoreError> {
            for i in 0..n {
                let serial = format!("7f{i:016x}");
                let fingerprint = format!("{:064x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15);
                s.record_certificate(
                    &serial,
                    &format!("CN=Prefilled User {i}"),
                    &der,
                    Some("User"),
                    now + 86_400 * 365,
                    None,
                    &fingerprint,
                    now,
                )?;
                s.append_audit(&sim_ca::store::AuditRecord {
                    id: 0,
                    at: now,
                    endpoint: Endpoint::FullCmc,
                    tls_fingerprint: fingerprint.clone(),
                    request_hash: fingerprint.clone(),
                    template: Some("User".into()),
                    outcome: AuditOutcome::Issued,
                    serial: Some(serial.clone()),
                    pending_id: None,
                    detail: "prefilled".into(),
                })?;
                s.first_sighting(Sighting::Nonce, &fingerprint, now)?;
                s.first_sighting(Sighting::Transaction, &serial, now)?;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let seq = store.group_sync().committed();
    store.group_sync().sync_through(seq);
    Ok(())
}

/// Database-level invariants: serials unique among issuance records, every issuance record
/// backed by its certificate and every certificate by its record.
pub(super) fn check_database(
    certificates: &BTreeMap<String, String>,
    audit: &[sim_ca::store::AuditRecord],
    violations: &mut Vec<String>,
) {
    let mut issued = BTreeSet::new();
    for r in audit {
        let issuing = r.outcome.issues_a_certificate();
        match (&r.serial, issuing) {
            (Some(serial), true) => {
                if !issued.insert(serial.clone()) {
                    violations.push(format!("serial {serial} issued twice (audit {})", r.id));
                }
                if !certificates.contains_key(serial) {
                    violations.push(format!(
                        "audit record {} names certificate {serial}, which the database lacks",
                        r.id
                    ));
                }
            }
            (None, true) => violations.push(format!("audit record {} has no serial", r.id)),
            _ => {}
        }
    }
    for serial in certificates.keys() {
        if !issued.contains(serial) {
            violations.push(format!("certificate {serial} has no audit record"));
        }
    }
}
