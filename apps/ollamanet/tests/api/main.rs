//! End-to-end tests of the composed platform through the gateway, in both deployment modes, on
//! the stack `OLLAMANET_TEST_STACK` selects (`embedded` or `full`).

mod announced_addresses;
mod authz;
mod bad_input;
mod browser;
mod bus_forgery;
mod catalog;
mod cli;
mod combinations;
mod conversations;
mod discovery;
mod docs_commands;
mod documents;
mod engine;
mod engines;
mod fake_ollama;
mod gateway;
mod helpers;
mod inference;
mod jwt;
mod lifecycle;
mod load_limits;
mod ops;
mod python_clients;
mod quotas;
mod ratelimit;
mod request_bodies;
mod resilience;
mod role_matrix;
mod story;
mod web;
mod web_admin;
mod web_chat;
mod web_pages;
