//! Shared test harness. Each test binary uses part of it.
#![allow(dead_code, unused_imports)]

pub mod alone;
pub mod app;
pub mod aurora;
pub mod browser;
pub mod chromium;
pub mod console;
pub mod decorated;
pub mod fake_provider;
pub mod logs;
pub mod oauth_server;
pub mod openbao;
pub mod postgres;
pub mod process;
pub mod provider_api;
pub mod skip;
pub mod stand_in;
pub mod store_faults;
pub mod sts;
pub mod token_endpoint;
pub mod upgrade;
pub mod vault_proxy;
pub mod wait;
pub mod webhook_receiver;
