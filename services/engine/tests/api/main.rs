//! The engine over real HTTP with real llama.cpp: a tiny random-weights model the tests write
//! themselves for fast deterministic checks, and (in `real_models`, the slow ones) SmolLM2 and
//! MiniLM fetched once into the cache.

mod chat;
mod contract;
mod errors;
mod generate;
mod helpers;
mod hostile;
mod lifecycle;
mod models;
mod openai;
mod pull;
mod real_models;
mod scheduling;
