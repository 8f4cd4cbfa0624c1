#![no_main]

libfuzzer_sys::fuzz_target!(init: ollamanet_fuzz::Target::Pdf.init(), |data: &[u8]| ollamanet_fuzz::Target::Pdf.run(data));
