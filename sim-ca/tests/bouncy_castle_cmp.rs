//! Bouncy Castle, a CMP implementation nobody here wrote (Debian's `libbcpkix-java`), reads what
//! we send and answer: the client's `kur` (P-256 and RSA-2048), `pollReq` and `certConf`,
//! sim-ca's `kup` (accepted, waiting), `pollRep`, `pkiConf` and `error`, the gateway's `nested`
//! message around a user's kur and its RA-protected answer. For each, Bouncy Castle verifies the
//! signature protection with the first extraCerts certificate and, in a kur, the proof of
//! possession with the requested key (`tests/java/CmpCheck.java`, run as a single-file Java
//! program). The test asserts on what it printed.

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use common::{Client, Upstream, ca, ca_with, cmp_key_update, now, rand16};
use renewal_codec::cmc::{DigestAlgorithm, Limits, Retained, SoftwareKey};
use renewal_codec::cmp::{
    PkiBody, PkiMessage,
    build::{Nesting, cert_confirm, nest, next_header, poll_request},
};
use sim_ca::Ca;
use x509_cert::Certificate;

const JARS: [&str; 3] = [
    "/usr/share/java/bcprov.jar",
    "/usr/share/java/bcpkix.jar",
    "/usr/share/java/bcutil.jar",
];

/// Whether Java and Bouncy Castle are here (under CI=true they must be).
fn bouncy_castle_present() -> bool {
    if !test_kit::require_tools(&["java"]) {
        return false;
    }
    let missing: Vec<&str> = JARS
        .iter()
        .copied()
        .filter(|j| !std::path::Path::new(j).is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !test_kit::in_ci(),
        "{missing:?} required under CI=true (Debian libbcpkix-java; scripts/test.sh installs it)"
    );
    eprintln!("SKIP: {missing:?} not installed (Debian libbcpkix-java)");
    false
}

/// Bouncy Castle's line for each message, by name: its `key=value` words.
fn bouncy_castle_reads(messages: &[(&str, Vec<u8>)]) -> BTreeMap<String, BTreeMap<String, String>> {
    let dir = test_kit::temp_dir("bc-cmp");
    let mut files = Vec::new();
    for (name, der) in messages {
        let path = dir.join(format!("{name}.der"));
        std::fs::write(&path, der).unwrap();
        files.push(path);
    }
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/java/CmpCheck.java");
    let out = test_kit::run(
        Command::new("java")
            .arg("-cp")
            .arg(JARS.join(":"))
            .arg(program)
            .args(&files),
    );
    let _ = std::fs::remove_dir_all(&dir);
    out.lines()
        .map(|line| {
            let words = words(line);
            let name = words["file"].trim_end_matches(".der").to_string();
            (name, words)
        })
        .collect()
}

/// `key=value` words; a value may be quoted (a subject with spaces). The nested message's
/// inner words come prefixed `inner.`.
fn words(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut prefix = "";
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            prefix = "inner.";
            rest = r.trim_start();
            continue;
        }
        if let Some(r) = rest.strip_prefix(']') {
            prefix = "";
            rest = r.trim_start();
            continue;
        }
        let (key, after) = rest.split_once('=').unwrap();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let (v, a) = quoted.split_once('"').unwrap();
            (v, a)
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        out.insert(format!("{prefix}{key}"), value.to_string());
        rest = after.trim_start();
    }
    out
}

/// A name as Bouncy Castle prints it: its RDNs in encoding order (RFC 4514 reverses them).
fn bc_name(name: &x509_cert::name::Name) -> String {
    name.iter_rdn()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kur(ca: &Ca, client: &Client, implicit: bool) -> Vec<u8> {
    cmp_key_update(
        ca,
        &client.old_cert,
        &client.old_key,
        &client.new_key,
        rand16(),
        implicit,
    )
}

fn parse(der: &[u8]) -> PkiMessage {
    PkiMessage::parse(der, &Limits::default()).unwrap()
}

fn issued(message: &PkiMessage) -> Retained<Certificate> {
    match &message.body {
        PkiBody::Kup(rep) => rep.response[0].certificate().unwrap(),
        other => panic!("expected kup, got {}", other.name()),
    }
}

#[test]
fn bouncy_castle_verifies_our_cmp_messages_and_sim_cas_answers() {
    if !bouncy_castle_present() {
        return;
    }
    let ca = ca();
    let p256 = Client::new(&ca);
    let rsa = Client::with_keys(
        &ca,
        SoftwareKey::generate_rsa(2048).unwrap(),
        SoftwareKey::generate_rsa(2048).unwrap(),
    );
    // A renewal with certConf (P-256), one with implicit confirmation (RSA-2048).
    let kur_p256 = kur(&ca, &p256, false);
    let kup_p256 = ca.handle_cmp(&kur_p256, &[]).body;
    let cert = issued(&parse(&kup_p256));
    let header = next_header(
        &parse(&kur_p256).header,
        &parse(&kup_p256).header,
        rand16(),
        now(),
    )
    .unwrap();
    let certconf = cert_confirm(&header, &cert, None, &p256.old_key, &p256.old_cert).unwrap();
    let pkiconf = ca.handle_cmp(&certconf, &[]).body;
    let kur_rsa = kur(&ca, &rsa, true);
    let kup_rsa = ca.handle_cmp(&kur_rsa, &[]).body;
    // A refusal: the same RSA kur's transaction again for another key.
    let again = {
        let tid = parse(&kur_rsa).header.transaction_id.unwrap();
        let another = SoftwareKey::generate_p256().unwrap();
        cmp_key_update(
            &ca,
            &rsa.old_cert,
            &rsa.old_key,
            &another,
            tid.as_bytes().try_into().unwrap(),
            true,
        )
    };
    let refused = ca.handle_cmp(&again, &[]).body;
    // Pending, then polled.
    let pending_ca = ca_with("[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n");
    let waiting_user = Client::new(&pending_ca);
    let kur_pending = kur(&pending_ca, &waiting_user, true);
    let waiting = pending_ca.handle_cmp(&kur_pending, &[]).body;
    let poll_header = next_header(
        &parse(&kur_pending).header,
        &parse(&waiting).header,
        rand16(),
        now(),
    )
    .unwrap();
    let pollreq =
        poll_request(&poll_header, &waiting_user.old_key, &waiting_user.old_cert).unwrap();
    let pollrep = pending_ca.handle_cmp(&pollreq, &[]).body;

    let read = bouncy_castle_reads(&[
        ("kur-p256", kur_p256.clone()),
        ("kup-p256", kup_p256.clone()),
        ("certconf", certconf),
        ("pkiconf", pkiconf),
        ("kur-rsa", kur_rsa.clone()),
        ("kup-rsa", kup_rsa),
        ("refused", refused),
        ("waiting", waiting),
        ("pollreq", pollreq),
        ("pollrep", pollrep),
    ]);
    assert_eq!(read.len(), 10, "{read:#?}");
    for (name, words) in &read {
        assert_eq!(
            words.get("protection").map(String::as_str),
            Some("ok"),
            "{name}: {words:?}"
        );
    }
    let ca_name = bc_name(
        ca.authority()
            .issuing
            .cert
            .value()
            .tbs_certificate()
            .subject(),
    );
    for (kur_name, client, kup_name, kur_der) in [
        ("kur-p256", &p256, "kup-p256", &kur_p256),
        ("kur-rsa", &rsa, "kup-rsa", &kur_rsa),
    ] {
        let kur = &read[kur_name];
        assert_eq!(kur["body"], "7");
        assert_eq!(kur["pop"], "ok", "{kur_name}");
        assert_eq!(kur["control"], "1.3.6.1.5.5.7.5.1.5", "oldCertID");
        let subject = bc_name(client.old_cert.value().tbs_certificate().subject());
        assert_eq!(kur["signer"], subject);
        let sent = parse(kur_der);
        assert_eq!(
            kur["tid"],
            hex(sent.header.transaction_id.as_ref().unwrap().as_bytes())
        );
        let kup = &read[kup_name];
        assert_eq!((kup["body"].as_str(), kup["status"].as_str()), ("8", "0"));
        assert_eq!(kup["signer"], ca_name);
        assert_eq!(kup["issued"], subject);
        assert_eq!(kup["tid"], kur["tid"]);
        assert_eq!(kup["recip_nonce"], kur["sender_nonce"]);
    }
    let certconf = &read["certconf"];
    assert_eq!(certconf["body"], "24");
    assert_eq!(
        certconf["cert_hash"],
        hex(&DigestAlgorithm::Sha256.digest(cert.der()))
    );
    assert_eq!(certconf["accepted"], "true");
    assert_eq!(read["pkiconf"]["body"], "19");
    assert_eq!(read["pkiconf"]["recip_nonce"], certconf["sender_nonce"]);
    let refused = &read["refused"];
    assert_eq!(
        (refused["body"].as_str(), refused["status"].as_str()),
        ("8", "2")
    );
    assert_eq!(
        (
            read["waiting"]["body"].as_str(),
            read["waiting"]["status"].as_str()
        ),
        ("8", "3")
    );
    assert_eq!(read["pollreq"]["body"], "25");
    assert_eq!(read["pollrep"]["body"], "26");
    assert!(read["pollrep"]["check_after"].parse::<u64>().unwrap() >= 1);
}

#[test]
fn bouncy_castle_verifies_the_gateways_nesting_and_its_answer() {
    if !bouncy_castle_present() {
        return;
    }
    let upstream = Upstream::start("");
    let user = upstream.user();
    let kur = kur(&upstream.ca, &user, true);
    let (chain, key) = upstream.ra_credential();
    let nested = nest(
        &kur,
        &parse(&kur).header,
        &Nesting {
            chain: &chain,
            sender_nonce: rand16(),
            time: now(),
        },
        &key,
    )
    .unwrap();
    let gateway = upstream.gateway_local(sim_ca::store::Store::in_memory().unwrap());
    let kup = gateway.handle_cmp(&kur, &[]).body;
    let read = bouncy_castle_reads(&[("nested", nested), ("gateway-kup", kup)]);
    let nested = &read["nested"];
    let ra_name = bc_name(chain[0].value().tbs_certificate().subject());
    assert_eq!(nested["body"], "20");
    assert_eq!(nested["protection"], "ok", "{nested:?}");
    assert_eq!(nested["signer"], ra_name);
    assert_eq!(nested["inner"], "1");
    assert_eq!(nested["inner.body"], "7");
    assert_eq!(nested["inner.protection"], "ok");
    assert_eq!(nested["inner.pop"], "ok");
    assert_eq!(
        nested["inner.signer"],
        bc_name(user.old_cert.value().tbs_certificate().subject())
    );
    assert_eq!(nested["tid"], nested["inner.tid"]);
    let answer = &read["gateway-kup"];
    assert_eq!(answer["protection"], "ok", "{answer:?}");
    assert_eq!(answer["signer"], ra_name);
    assert_eq!(
        (answer["body"].as_str(), answer["status"].as_str()),
        ("8", "0")
    );
    assert_eq!(answer["recip_nonce"], nested["inner.sender_nonce"]);
}
