//! Our CMP messages checked by a server we did not write: OpenSSL's `openssl cmp` CMP server
//! (its mock server behind `-port`, plain HTTP as RFC 6712 allows for protected messages)
//! receives a `kur` we built — the request proven by the new key, the message protected by the
//! old one — verifies both and answers; our `certConf` is acknowledged with `pkiconf`. OpenSSL
//! 3.0's mock server answers a `kur` with the very certificate being updated (see
//! vectors/cmp/README.md), so the confirmation rejects it, as `openssl cmp` itself does.
//! Required under `CI=true`; skipped with the reason elsewhere.

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime},
};

use renewal_codec::{
    cmc::Limits,
    cmp::{
        PkiBody, PkiMessage, PkiStatus, PkiStatusInfo,
        build::{KeyUpdate, cert_confirm, key_update_request},
    },
    sample::{KeyKind, Sample},
};

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

/// `openssl cmp` as a CMP server on `port` for `messages` messages; its log in `log`.
fn openssl_server(dir: &std::path::Path, port: u16, implicit_confirm: bool) -> Child {
    let messages = if implicit_confirm { "1" } else { "2" };
    let mut cmd = Command::new("openssl");
    if implicit_confirm {
        cmd.arg("cmp").arg("-grant_implicitconf");
    } else {
        cmd.arg("cmp");
    }
    cmd.args(["-port", &port.to_string(), "-max_msgs", messages])
        .args([
            "-srv_cert",
            "ca.pem",
            "-srv_key",
            "ca.key",
            "-srv_trusted",
            "ca.pem",
        ])
        .args(["-rsp_cert", "old.pem"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap()
}

/// One keep-alive HTTP connection to the server, as OpenSSL's own client keeps it: the 3.0
/// server forgets a transaction when its connection closes, so `kur` and `certConf` go over the
/// same connection (RFC 6712 §3.4: `application/pkixcmp`).
struct Connection {
    stream: TcpStream,
    dir: std::path::PathBuf,
}

impl Connection {
    fn post(&mut self, name: &str, message: &[u8]) -> PkiMessage {
        std::fs::write(self.dir.join(name), message).unwrap();
        let head = format!(
            "POST /pkix/ HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/pkixcmp\r\n\
             Content-Length: {}\r\nConnection: keep-alive\r\n\r\n",
            message.len()
        );
        self.stream.write_all(head.as_bytes()).unwrap();
        self.stream.write_all(message).unwrap();
        let mut reader = BufReader::new(&self.stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).unwrap();
        assert!(status.contains(" 200 "), "{status}: {}", self.log());
        PkiMessage::parse(&answer, &Limits::default())
            .unwrap_or_else(|e| panic!("OpenSSL's answer to {name}: {e}\n{}", self.log()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

fn renew_against_openssl(kind: KeyKind, implicit_confirm: bool) {
    let dir = test_kit::temp_dir("cmp-openssl");
    let sample = Sample::generate(kind).unwrap();
    std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", sample.ca_cert.der())).unwrap();
    std::fs::write(
        dir.join("ca.key"),
        sample.ca_key.to_pkcs8_pem().unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        dir.join("old.pem"),
        pem("CERTIFICATE", sample.old_cert.der()),
    )
    .unwrap();
    let port = test_kit::free_port();
    let mut server = test_kit::Served(openssl_server(&dir, port, implicit_confirm));
    assert!(
        test_kit::wait_for_port(port, Duration::from_secs(30)),
        "openssl cmp did not listen"
    );

    let params = KeyUpdate {
        old: &sample.old_cert,
        recipient: sample.ca_cert.value().tbs_certificate().subject().clone(),
        transaction_id: *b"cardrenew-tid-01",
        sender_nonce: *b"cardrenew-nonce1",
        time: SystemTime::now(),
        implicit_confirm,
    };
    let kur = key_update_request(&params, &sample.old_key, &sample.new_key).unwrap();
    // What we built verifies with our own parser first.
    let ours = PkiMessage::parse(&kur, &Limits::default()).unwrap();
    ours.verify_protection(sample.old_cert.value()).unwrap();
    let PkiBody::Kur(requests) = &ours.body else {
        panic!("{}", ours.body.name())
    };
    requests[0].verify_pop().unwrap();

    let mut connection = Connection {
        stream: TcpStream::connect(("127.0.0.1", port)).unwrap(),
        dir: dir.clone(),
    };
    connection
        .stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let kup = connection.post("kur.der", &kur);
    kup.verify_protection(sample.ca_cert.value()).unwrap();
    assert_eq!(
        kup.header.transaction_id.as_ref().unwrap().as_bytes(),
        params.transaction_id
    );
    assert_eq!(
        kup.header.recip_nonce.as_ref().unwrap().as_bytes(),
        params.sender_nonce
    );
    let PkiBody::Kup(rep) = &kup.body else {
        panic!(
            "OpenSSL answered {} to our kur: {:?}\n{}",
            kup.body.name(),
            kup.body,
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        )
    };
    // Accepted: OpenSSL verified our protection (old key) and our proof of possession (new
    // key); a failure of either is an error message, not a kup.
    assert_eq!(rep.response[0].status.status(), PkiStatus::Accepted);
    let issued = rep.response[0].certificate().unwrap();
    assert_eq!(kup.header.implicit_confirm(), implicit_confirm);
    if implicit_confirm {
        return;
    }
    // The mock server certified the old key, not the new one: reject it, as a client must.
    assert_ne!(
        issued.value().tbs_certificate().subject_public_key_info(),
        renewal_codec::cmc::Signer::public_key(&sample.new_key)
    );
    let mut header = ours.header.clone();
    header.sender_nonce = Some(der::asn1::OctetString::new(*b"cardrenew-nonce2").unwrap());
    header.recip_nonce = kup.header.sender_nonce.clone();
    let rejection = PkiStatusInfo {
        status: 2,
        status_string: Some(vec!["the certificate is not for the requested key".into()]),
        fail_info: Some(der::asn1::BitString::new(0, [0x01]).unwrap()),
    };
    let conf = cert_confirm(
        &header,
        &issued,
        Some(&rejection),
        &sample.old_key,
        &sample.old_cert,
    )
    .unwrap();
    let ack = connection.post("certconf.der", &conf);
    ack.verify_protection(sample.ca_cert.value()).unwrap();
    assert!(
        matches!(ack.body, PkiBody::PkiConf),
        "OpenSSL answered {} to our certConf: {:?}\n{}",
        ack.body.name(),
        ack.body,
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
    // The server served its two messages and ended cleanly.
    let status = server.0.wait().unwrap();
    let mut log = String::new();
    std::fs::File::open(dir.join("server.log"))
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "openssl cmp server: {status}\n{log}");
}

#[test]
fn openssl_cmp_server_accepts_our_p256_key_update_and_confirmation() {
    if !test_kit::require_tools(&["openssl"]) {
        return;
    }
    renew_against_openssl(KeyKind::P256, false);
}

#[test]
fn openssl_cmp_server_accepts_our_rsa_key_update_with_implicit_confirm() {
    if !test_kit::require_tools(&["openssl"]) {
        return;
    }
    renew_against_openssl(KeyKind::Rsa2048, true);
}
