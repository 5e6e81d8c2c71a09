//! libFuzzer's entry to the checks of `fuzz/checks/policy_parse.rs`, which `tests/fuzz_corpus.rs`
//! also runs over the committed seeds in `fuzz/corpus/policy_parse/`.

#![no_main]

#[path = "../checks/policy_parse.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run(data));
