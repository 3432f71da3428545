//! The fuzz target's checks (`sg_function::fuzzing`) over its seed corpus — every fixture —
//! and over every input the fuzzer ever found failing, kept in `fuzz/regressions/`.

use std::path::Path;

use sg_function::fuzzing::{check_event, check_plan};

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().is_some_and(|n| n != ".gitkeep"))
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_fixture_passes_the_event_checks() {
    let fixtures = inputs("tests/fixtures");
    assert!(fixtures.len() >= 20, "the seed corpus is the fixtures directory");
    for (name, data) in fixtures {
        eprintln!("{name}");
        check_event(&data);
    }
}

#[test]
fn kept_crashers_pass_the_checks() {
    for (name, data) in inputs("../fuzz/regressions/event") {
        eprintln!("{name}");
        check_event(&data);
    }
    for (name, data) in inputs("../fuzz/regressions/plan") {
        eprintln!("{name}");
        check_plan(&data);
    }
}

#[test]
fn hand_written_inputs_pass_the_checks() {
    // Malformed: no call. A parseable change event: the group ends on the baseline.
    check_event(br#"{"invokingEvent": 7}"#);
    check_event(include_bytes!("fixtures/change-notification.json"));
    // A plan over rules that include the baseline's own.
    check_plan(&[2, 0, 1, 0, 0, 2, 0, 1, 3, 2, 3, 0, 4]);
}
