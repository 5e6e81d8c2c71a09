//! libFuzzer's entry to the checks of `fuzz/checks/overlay_paths.rs`, which `tests/fuzz_corpus.rs`
//! also runs over the committed seeds in `fuzz/corpus/overlay_paths/`.

#![no_main]

#[path = "../checks/overlay_paths.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run(data));
