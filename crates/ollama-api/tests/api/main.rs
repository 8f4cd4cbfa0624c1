//! The crate against Ollama's own documented examples, the streaming codecs under arbitrary
//! chunking, the OpenAI conversions, and the client against a fake engine in-process and over
//! HTTP.

mod client;
mod codec;
mod golden;
mod helpers;
mod openai;
