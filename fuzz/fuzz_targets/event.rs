//! Any bytes as an event: no panic; a malformed event makes no AWS call; every group changed
//! ends on the baseline.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sg_function::fuzzing::check_event(data));
