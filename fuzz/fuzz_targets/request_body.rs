#![no_main]

libfuzzer_sys::fuzz_target!(init: ollamanet_fuzz::Target::RequestBody.init(), |data: &[u8]| ollamanet_fuzz::Target::RequestBody.run(data));
