//! The client keeps one connection for a renewal's exchanges. A new connection is a new TLS
//! handshake — a card signature, and a PIN prompt for a PIN-always key — and a CMP server may
//! bind its transaction to the connection (OpenSSL 3.0's forgets it when the connection closes,
//! so a certConf on a second connection meets "unexpected pkibody"). hyper hands the connection
//! back only once its task has finished the previous answer: a request sent before that must
//! wait for it, not open another connection.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use conformance::harness::World;
use renewal_client::{
    client::{Mode, RenewalService},
    token::KeyAlgorithm,
};

/// Exchanges sent back to back on one service.
const EXCHANGES: usize = 300;

/// A plain-HTTP server that answers every POST as OpenSSL's CMP server does (HTTP/1.0 with
/// `Connection: keep-alive`) and counts the connections it accepted.
fn keep_alive_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve_connection(stream));
        }
    });
    (port, accepted)
}

fn serve_connection(stream: std::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        // The request line, then the headers up to the empty line.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\
                       Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

#[test]
fn back_to_back_exchanges_share_one_connection() {
    let (port, accepted) = keep_alive_server();
    let world = World::new("", KeyAlgorithm::EcP256).unwrap();
    let mut service = world
        .service_at(&format!("http://127.0.0.1:{port}/pkix/"), Mode::Cmp)
        .unwrap();
    service.warm_up().unwrap();
    for i in 0..EXCHANGES {
        // The answer is no CMP message: refused, and the connection stays as it was.
        let answer = service.submit(b"not a CMP message");
        assert!(answer.is_err(), "exchange {i}: {answer:?}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "exchange {i} opened another connection"
        );
    }
}
