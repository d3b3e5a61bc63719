//! Runs the named APDU scenarios in `apdu_scripts.txt`: every step's status word (and data
//! prefix, where given) must match.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use sim_card::{
    CardConfig, PivApplet,
    state::{DEFAULT_MANAGEMENT_KEY, ManagementAlgorithm, from_hex},
    tlv::{find, tlv},
};

fn hex(text: &str) -> Vec<u8> {
    let compact: String = text.split_whitespace().collect();
    from_hex(&compact).unwrap_or_else(|| panic!("bad hex {text:?}"))
}

fn send(applet: &mut PivApplet, apdu: &[u8]) -> (Vec<u8>, u16) {
    let out = applet.process_bytes(apdu);
    let (data, sw) = out.split_at(out.len() - 2);
    (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
}

/// Mutual authentication with the default card's management key (AES-192, a YubiKey 5.7's).
fn management_auth(applet: &mut PivApplet) {
    let alg = ManagementAlgorithm::Aes192;
    let (data, sw) = send(applet, &hex("00 87 0A 9B 04 7C 02 80 00 00"));
    assert_eq!(sw, 0x9000);
    let witness = find(find(&data, &[0x7C]).unwrap(), &[0x80])
        .unwrap()
        .to_vec();
    let plain = sim_card::crypto::mgmt_decrypt(alg, &DEFAULT_MANAGEMENT_KEY, &witness).unwrap();
    let challenge = [9u8; 16];
    let mut body = tlv(&[0x80], &plain);
    body.extend(tlv(&[0x81], &challenge));
    let mut apdu = vec![0x00, 0x87, alg.id(), 0x9B];
    let inner = tlv(&[0x7C], &body);
    apdu.push(inner.len() as u8);
    apdu.extend(inner);
    apdu.push(0);
    let (data, sw) = send(applet, &apdu);
    assert_eq!(sw, 0x9000, "mutual authentication");
    let answer = find(find(&data, &[0x7C]).unwrap(), &[0x82]).unwrap();
    assert_eq!(
        answer,
        sim_card::crypto::mgmt_encrypt(alg, &DEFAULT_MANAGEMENT_KEY, &challenge).unwrap(),
        "the card proves it knows the key"
    );
}

#[test]
fn apdu_scripts() {
    let script = include_str!("apdu_scripts.txt");
    let mut scenarios = 0;
    let mut steps = 0;
    let mut applet = PivApplet::new(&CardConfig::default()).unwrap();
    let mut name = String::new();
    for (n, line) in script.lines().enumerate() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        if let Some(title) = line.strip_prefix("==") {
            name = title.trim().to_string();
            applet = PivApplet::new(&CardConfig::default()).unwrap();
            scenarios += 1;
            continue;
        }
        if line == "!auth" {
            management_auth(&mut applet);
            continue;
        }
        if line == "!reset" {
            applet.reset();
            continue;
        }
        if let Some(cap) = line.strip_prefix("!capacity") {
            let capacity = cap.trim().parse().unwrap();
            applet = PivApplet::new(&CardConfig {
                capacity,
                ..CardConfig::default()
            })
            .unwrap();
            continue;
        }
        let (apdu, expect) = match line.split_once("->") {
            Some((a, e)) => (a, Some(e.trim())),
            None => (line, None),
        };
        let (data, sw) = send(&mut applet, &hex(apdu));
        steps += 1;
        let Some(expect) = expect else {
            assert_eq!(
                sw,
                0x9000,
                "{name} (line {}): setup step failed with {sw:04X}",
                n + 1
            );
            continue;
        };
        let mut parts = expect.splitn(2, ' ');
        let want_sw = u16::from_str_radix(parts.next().unwrap(), 16).unwrap();
        assert_eq!(
            sw,
            want_sw,
            "{name} (line {}): status word {sw:04X}, expected {want_sw:04X}",
            n + 1
        );
        if let Some(prefix) = parts.next() {
            let prefix = hex(prefix);
            assert!(
                data.starts_with(&prefix),
                "{name} (line {}): data {:02X?} does not start with {:02X?}",
                n + 1,
                data,
                prefix
            );
        }
    }
    assert_eq!(scenarios, 19);
    assert!(steps > 80, "{steps} steps");
}
