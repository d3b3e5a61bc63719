//! The virtual card's APDU handler fed a sequence of commands (each prefixed by its length
//! byte): no panic, and every answer ends with a status word.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sim_card::{applet::PivApplet, state::CardConfig};

fuzz_target!(|data: &[u8]| {
    let config = CardConfig {
        seed: 7,
        ..CardConfig::default()
    };
    let Ok(mut card) = PivApplet::new(&config) else {
        return;
    };
    // A key made with a touch policy waits for a touch: a finger always ready keeps the
    // fuzzer from sitting out the card's 15 s timeout on every such input.
    card.set_touch_sensor(sim_card::touch::TouchSensor::automatic(
        std::time::Duration::ZERO,
    ));
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (apdu, next) = tail.split_at(len);
        let answer = card.process_bytes(apdu);
        assert!(answer.len() >= 2, "an answer without a status word");
        rest = next;
    }
});
