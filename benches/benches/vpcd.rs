//! An APDU through the vpcd connection, with the peer and the floor in the same run. The other
//! end plays vpcd as it behaves (measured with strace through pcscd): a message's 2-byte length
//! and its body in two writes, Nagle on. Each iteration is one APDU sent and its answer read.
//! * `ours`: `sim_card::vpcd::serve_connection` (acknowledges the length at once).
//! * `vpicc`: the `vpicc` crate's own `Connection` loop, the peer (and ours before 74c56ba).
//! * `floor`: the same card answering the same APDU over loopback, the APDU sent in one write
//!   with `TCP_NODELAY`: a loopback round trip and the card's work, nothing to wait for.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};

/// A card that answers an APDU with 90 00: the loop's cost, not the applet's.
struct Answering;

impl vpicc::VSmartCard for Answering {
    fn power_on(&mut self) {}
    fn power_off(&mut self) {}
    fn reset(&mut self) {}
    fn execute(&mut self, _: &[u8]) -> Vec<u8> {
        vec![0x90, 0x00]
    }
}

/// SELECT the PIV application.
const SELECT_PIV: [u8; 11] = [
    0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00,
];

/// vpcd's end of a connection whose card end is served by `serve` on another thread.
fn vpcd_end(serve: impl FnOnce(TcpStream) + Send + 'static) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let card_end = TcpStream::connect(address).unwrap();
        card_end.set_nodelay(true).unwrap();
        serve(card_end);
    });
    listener.accept().unwrap().0
}

/// The card end served by our loop.
fn ours(card_end: TcpStream) {
    let _ = sim_card::vpcd::serve_connection(card_end, &mut Answering);
}

/// The card end served by vpicc's own loop.
fn vpiccs(card_end: TcpStream) {
    let _ = vpicc::Connection::from(card_end).run(&mut Answering);
}

fn answer(vpcd: &mut TcpStream) {
    let mut framed = [0u8; 4];
    vpcd.read_exact(&mut framed).unwrap();
    assert_eq!(framed, [0x00, 0x02, 0x90, 0x00]);
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("vpcd APDU");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    let length = u16::try_from(SELECT_PIV.len()).unwrap().to_be_bytes();

    for (name, serve) in [("ours", ours as fn(TcpStream)), ("vpicc", vpiccs)] {
        let mut vpcd = vpcd_end(serve);
        group.bench_function(name, |b| {
            b.iter(|| {
                vpcd.write_all(&length).unwrap();
                vpcd.write_all(&SELECT_PIV).unwrap();
                answer(&mut vpcd);
            })
        });
    }

    let mut vpcd = vpcd_end(ours);
    vpcd.set_nodelay(true).unwrap();
    let message = [&length[..], &SELECT_PIV].concat();
    group.bench_function("floor", |b| {
        b.iter(|| {
            vpcd.write_all(&message).unwrap();
            answer(&mut vpcd);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
