//! What a model is made of, read from bytes that whoever published the model chose: the GGUF
//! header ([`gguf`]), the Jinja chat template that runs on every request ([`template`]) and the
//! registry manifest that lists a model's layers ([`manifest`]); and the worker process a
//! server renders templates in ([`worker`]).
//!
//! Pure and synchronous, apart from the engine that serves models (and the llama.cpp build it
//! needs), so that each reader can be tested and fuzzed on its own (`fuzz/`): every one of them
//! bounds what a hostile input may cost before it allocates or loops.

pub mod gguf;
pub mod manifest;
pub mod template;
pub mod worker;
