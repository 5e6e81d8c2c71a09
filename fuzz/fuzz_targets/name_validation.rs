//! libFuzzer's entry to the checks of `fuzz/checks/name_validation.rs`, which `tests/fuzz_corpus.rs`
//! also runs over the committed seeds in `fuzz/corpus/name_validation/`.

#![no_main]

#[path = "../checks/name_validation.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run(data));
