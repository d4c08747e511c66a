//! The HTTP surface, end to end: the real service on port 0, on SQLite and on PostgreSQL.

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod audit_scale;
mod audit_sink;
mod auth_routes;
mod aws_onboard;
mod bitbucket_forms;
mod checks;
mod checks_status;
mod client_addr;
mod connect;
mod connect_revoke;
mod console;
mod console_account;
mod console_checks;
mod console_expired;
mod credentials;
mod database_outage;
mod errors;
mod events;
mod events_delivery;
mod failures;
mod headers;
mod http_limits;
mod identity;
mod import;
mod import_adopted;
mod library;
mod lost_answer;
mod metrics_scrape;
mod names;
mod openapi;
mod ops;
mod org_upgrade;
mod orgs;
mod password_change_required;
mod password_race;
mod rate_limit;
mod refresh;
mod refresh_lease;
mod refresh_real;
mod registration;
mod revocation;
mod service_account_keys;
