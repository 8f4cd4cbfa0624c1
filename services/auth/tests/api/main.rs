//! The auth service over real HTTP against real databases: SQLite by default, Postgres + Redis
//! + RabbitMQ with `OLLAMANET_TEST_STACK=full`.

mod admin_users;
mod bad_input;
mod helpers;
mod jwks;
mod keys;
mod login;
mod me;
mod password;
mod refresh;
mod register;
mod roles;
mod smtp;
mod tokens;
