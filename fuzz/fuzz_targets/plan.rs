//! Any rules and baseline: the plan, applied, yields exactly the baseline and never revokes a
//! required rule.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sg_function::fuzzing::check_plan(data));
