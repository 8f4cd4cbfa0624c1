//! The `ollamanet` binary's library half: configuration and composition, so that tests can
//! build the same process the binary runs.

pub mod app;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod models;
