//! The one integration-test binary (STYLE.md): add modules here, not new binaries.
#![allow(clippy::unwrap_used)]

mod browser;
mod browser_flow;
mod cli;
mod client_pages;
mod demo;
mod discovery;
mod faults;
mod flows;
mod helpers;
mod instances;
mod limits;
mod openapi;
mod process;
mod races;
mod redis_server;
mod registration;
mod rotation;
mod security;
mod store_conformance;
mod token;
