//! libFuzzer's entry to the checks of `fuzz/checks/pattern_match.rs`, which `tests/fuzz_corpus.rs`
//! also runs over the committed seeds in `fuzz/corpus/pattern_match/`.

#![no_main]

#[path = "../checks/pattern_match.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run(data));
