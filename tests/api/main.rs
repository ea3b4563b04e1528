//! The one integration-test binary (STYLE.md): add modules here, not new binaries.
#![allow(clippy::unwrap_used)]

mod chromium;
mod cli;
mod client_documents;
mod client_pages;
mod consent;
mod cors;
mod demo_client;
mod discovery;
mod doc_server;
mod faults;
mod flows;
mod helpers;
mod instances;
mod limits;
mod logout;
mod mcp_clients;
mod oauth_flows;
mod oidc;
mod openapi;
mod operator;
mod process;
mod profile;
mod races;
mod real_browser;
mod redis_server;
mod registration;
mod relying_parties;
mod resources;
mod revocation;
mod rotation;
mod security;
mod sign_in;
mod steps;
mod store_conformance;
mod token;
