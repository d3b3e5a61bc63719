//! Scenario files: sim-ca's TOML and the conformance runner's, any text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scenario) = sim_ca::scenario::Scenario::from_toml(text) {
        for rule in &scenario.rules {
            let _ = rule.build();
        }
        let _ = sim_ca::templates::TemplateRegistry::from_configs(&scenario.templates);
    }
    let _ = conformance::scenario_file::parse(text);
});
