//! The connections page: every connection of the org with its status and its reason, the last check
//! (when, and what it found wrong), a "Check now" button for editors, and the outcome of a connect flow
//! when the provider sends the browser back here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::connections::{Confirm, NameQuery, caller, provider_name, title_of, writable};
use super::forms::Posted;
use super::layout::{csrf, notice, page, stamp};
use super::session::Signed;
use crate::credentials::{CheckReport, ConnectionView};
use crate::http::extract::{ApiQuery, ClientAddr};
use crate::http::{ApiError, AppState};
use crate::orgs::Permission;

/// What a connect flow's callback adds to the console's URL (`docs/CONNECT.md`).
#[derive(serde::Deserialize, Default)]
pub struct FlowOutcome {
    connected: Option<String>,
    name: Option<String>,
    error: Option<String>,
    provider: Option<String>,
}

impl FlowOutcome {
    /// The message to show. Anyone can write such a URL, so only a catalog provider and an OAuth-style
    /// error code (lowercase letters and `_`) are shown, never free text.
    fn message(&self) -> Option<Markup> {
        let known = |p: &Option<String>| p.as_deref().and_then(crate::providers::find);
        if let Some(spec) = known(&self.connected) {
            let name = match self.name.as_deref() {
                Some(n) if n != "default" && super::connections::is_name(n) => format!(" ({n})"),
                _ => String::new(),
            };
            return Some(notice(false, &format!("{}{name} is connected.", spec.name)));
        }
        let code = self.error.as_deref()?;
        let code = match code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            true => code,
            false => "invalid_response",
        };
        let who = known(&self.provider).map_or("the provider", |s| s.name);
        Some(notice(
            true,
            &format!("Connecting {who} did not work ({code}): nothing was stored."),
        ))
    }
}

pub async fn list(State(state): State<AppState>, who: Signed, ApiQuery(q): ApiQuery<FlowOutcome>) -> Response {
    listing(&state, &who, q.message()).await.into_response()
}

/// The connections page with `message` on top.
async fn listing(state: &AppState, who: &Signed, message: Option<Markup>) -> Response {
    if let Err(e) = who.acting.require(Permission::ReadConnections) {
        return who.fail(e);
    }
    let connections = match state.credentials.list(&who.acting.org).await {
        Ok(c) => c,
        Err(e) => return who.fail(e),
    };
    let writer = who.acting.require(Permission::WriteConnections).is_ok();
    let body = html! {
        @if let Some(m) = message { (m) }
        @if connections.is_empty() { p { "No provider is connected in this organization yet." } }
        @else { (table(who, &connections, writer)) }
        @if writer {
            h2 { "Connect a provider" }
            ul.providers {
                @for p in crate::providers::catalog() {
                    li { a href={ "/connect/" (p.id) } { (p.name) } }
                }
            }
        }
    };
    page("Connections", Some(who), body).into_response()
}

fn table(who: &Signed, connections: &[ConnectionView], writer: bool) -> Markup {
    html! {
        div.scroll {
            table.cards {
                thead { tr {
                    th scope="col" { "Provider" } th scope="col" { "Name" } th scope="col" { "Details" } th scope="col" { "Status" }
                    th scope="col" { "Last check" } th scope="col" { "Expires" } th scope="col" { "Last refresh" }
                    @if writer { th scope="col" { span.visually-hidden { "Actions" } } }
                } }
                tbody {
                    @for c in connections {
                        tr {
                            td { strong { (provider_name(&c.provider)) } }
                            td data-label="Name" { (c.name) }
                            td data-label="Details" { (details(&c.metadata)) }
                            td data-label="Status" {
                                span class={ "status " (c.status.as_str()) } { (c.status.as_str().replace('_', " ")) }
                                @if let Some(reason) = &c.status_reason { br; small { (reason) } }
                            }
                            td data-label="Last check" {
                                (stamp(c.last_checked_at.as_deref()))
                                @if let Some(e) = &c.last_check_error { br; small.check-error { "failed: " (e) } }
                            }
                            td data-label="Expires" { (stamp(c.expires_at.as_deref())) }
                            td data-label="Last refresh" { (stamp(Some(&c.updated_at))) }
                            @if writer {
                                td.actions {
                                    form.inline method="post" action={ "/check/" (c.provider) "?name=" (c.name) } {
                                        (csrf(who))
                                        button type="submit" aria-label={ "Check " (provider_name(&c.provider)) " " (c.name) " now" } { "Check now" }
                                    }
                                    " "
                                    a href={ "/disconnect/" (c.provider) "?name=" (c.name) } { "Disconnect" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The connection's display metadata (the catalog keeps only non-secret fields there).
fn details(metadata: &Map<String, Value>) -> Markup {
    html! {
        @for (k, v) in metadata {
            small { (k) ": " (v.as_str().map_or_else(|| v.to_string(), str::to_string)) } br;
        }
    }
}

/// "Check now": the same check as `POST /api/tokens/{provider}/check`, its result on top of the list.
pub async fn check(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<NameQuery>,
    Posted { who, .. }: Posted<Confirm>,
) -> Response {
    let target = match writable(&who, &id, q.name.as_deref()) {
        Ok(t) => t,
        Err(e) => return who.fail(e),
    };
    let name = title_of(&target);
    match state.credentials.check_now(&caller(&who), target, &addr).await {
        Ok(report) => listing(&state, &who, Some(check_result(&name, &report))).await,
        Err(e) => {
            let (status, message) = ApiError::from(e).status_and_message();
            let mut page = listing(&state, &who, Some(notice(true, &message))).await;
            if page.status() == StatusCode::OK {
                *page.status_mut() = status;
            }
            page
        }
    }
}

fn check_result(name: &str, r: &CheckReport) -> Markup {
    let status = r.connection.status.as_str().replace('_', " ");
    match r.ok {
        true => notice(
            false,
            &format!("{name}: the check passed ({}); status {status}.", r.detail),
        ),
        false => notice(
            true,
            &format!("{name}: the check failed ({}); status {status}.", r.detail),
        ),
    }
}
