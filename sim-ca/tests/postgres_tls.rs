//! The shared store over TLS: a PostgreSQL server of the test's own with a certificate issued
//! by `sim-ca credential --tls-server`, accepting only encrypted connections over TCP.
//! `sslmode=verify-full` with the CA file connects to `localhost` and refuses the same server
//! reached as 127.0.0.1 (not its name) or under another CA; `sslmode=require` checks the chain
//! only; a plain connection is refused by the server; a TLS mode without its CA file is
//! refused before connecting. PostgreSQL from Debian: required under `CI=true`.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;

use common::pg;
use sim_ca::{
    authority::Authority,
    gateway::credential::{self, Purpose},
    store::{Sighting, Store},
};

struct Cluster(std::path::PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.0.join("data");
        if pg::bin("pg_ctl").is_some() {
            let _ = std::panic::catch_unwind(|| {
                pg::run(
                    "pg_ctl",
                    &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
                )
            });
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pem(certs: &[&sim_ca::authority::CaIdentity]) -> String {
    certs
        .iter()
        .map(|c| {
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, c.cert.der()).unwrap()
        })
        .collect()
}

#[test]
fn the_store_over_tls_verifies_the_server_and_its_name() {
    if pg::bin("initdb").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is required under CI=true"
        );
        eprintln!("SKIP: no PostgreSQL server binaries");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sim-ca-pg-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = Cluster(dir.clone());
    pg::own(&dir);
    let data = dir.join("data");
    pg::run(
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
    );
    // The server's certificate, from a CA of ours; the clients trust that CA.
    let now = std::time::SystemTime::now();
    let authority =
        Authority::generate_with(now, renewal_codec::cmc::KeyAlgorithm::EcP256).unwrap();
    let server = credential::issue(
        &authority,
        "postgres",
        &["localhost"],
        Purpose::TlsServer,
        now,
    )
    .unwrap();
    credential::write(&server, &data.join("server")).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, pem(&[&authority.issuing, &authority.root])).unwrap();
    let other = Authority::generate_with(now, renewal_codec::cmc::KeyAlgorithm::EcP256).unwrap();
    let other_ca = dir.join("other-ca.pem");
    std::fs::write(&other_ca, pem(&[&other.issuing, &other.root])).unwrap();
    // TLS only, over TCP on loopback.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "\nssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n\
         listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n",
        dir.display()
    ));
    std::fs::write(&conf, text).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n\
         local all all trust\n",
    )
    .unwrap();
    pg::own(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let log = dir.join("server.log");
    pg::run(
        "pg_ctl",
        &[
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ],
    );

    let url =
        |host: &str, query: &str| format!("postgresql://postgres@{host}:{port}/postgres{query}");
    let verify_full = format!("?sslmode=verify-full&sslrootcert={}", ca_file.display());
    // verify-full, by the certificate's name: connected, and the store works over it.
    let store = Store::connect(&url("localhost", &verify_full)).unwrap();
    assert!(store.first_sighting(Sighting::Nonce, "tls", 1).unwrap());
    assert_eq!(store.sighting_at(Sighting::Nonce, "tls").unwrap(), Some(1));
    // The same server as 127.0.0.1: not its name.
    let e = Store::connect(&url("127.0.0.1", &verify_full))
        .err()
        .unwrap();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // Another CA: refused.
    let e = Store::connect(&url(
        "localhost",
        &format!("?sslmode=verify-full&sslrootcert={}", other_ca.display()),
    ))
    .err()
    .unwrap();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // require: the chain is verified, not the name.
    let store = Store::connect(&url(
        "127.0.0.1",
        &format!("?sslmode=require&sslrootcert={}", ca_file.display()),
    ))
    .unwrap();
    assert_eq!(store.sighting_at(Sighting::Nonce, "tls").unwrap(), Some(1));
    // Plain text is refused by the server; TLS without a CA file by us.
    assert!(Store::connect(&url("localhost", "")).is_err());
    let e = Store::connect(&url("localhost", "?sslmode=require"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("sslrootcert"), "{e}");
    drop(cluster);
}
