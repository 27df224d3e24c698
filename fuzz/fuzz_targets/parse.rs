//! Fuzz the KQL front end: any input must parse or fail with diagnostics, never panic or
//! overflow the stack; every statement that parses must print and parse back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let script = kvm_lang::parse_script("fuzz.kql", source);
    let _ = script.render_diagnostics();
    for stmt in &script.statements {
        let printed = stmt.to_string();
        match kvm_lang::parse_statement(&printed) {
            Ok(again) => assert_eq!(&again, stmt, "round trip changed:\n{printed}"),
            Err(d) => panic!("printed statement does not parse: {d}\n{printed}"),
        }
    }
});
