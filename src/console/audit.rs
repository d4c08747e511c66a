//! The audit trail, newest first, a page at a time: the caller's own events, or (admins) the org's.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{page as frame, when};
use super::session::Signed;
use crate::clock::rfc3339;
use crate::db::AuditOwner;
use crate::http::extract::ApiQuery;
use crate::http::{ApiError, AppState};
use crate::orgs::Permission;

/// Events per page.
const PAGE: i64 = 25;

#[derive(Deserialize)]
pub struct Query {
    before: Option<i64>,
    #[serde(default)]
    org: bool,
}

pub async fn page(State(state): State<AppState>, who: Signed, ApiQuery(q): ApiQuery<Query>) -> Response {
    let admin = who.acting.require(Permission::ReadOrgAudit).is_ok();
    if q.org
        && let Err(e) = who.acting.require(Permission::ReadOrgAudit)
    {
        return who.fail(e);
    }
    let owner = match q.org {
        true => AuditOwner::Org(who.acting.org.as_str()),
        false => AuditOwner::User(&who.who.user_id),
    };
    let rows = match state.audit.list(owner, q.before, PAGE).await {
        Ok(rows) => rows,
        Err(e) => return who.fail(ApiError::database(e)),
    };
    let older = (i64::try_from(rows.len()) == Ok(PAGE))
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let scope = if q.org { "&org=true" } else { "" };
    let body = html! {
        @if admin {
            p { @if q.org { a href="/audit" { "Show my own events" } } @else { a href="/audit?org=true" { "Show the organization's events" } } }
        }
        @if rows.is_empty() { p { "No events." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Event" } th scope="col" { "Provider" }
                    th scope="col" { "Outcome" } th scope="col" { "From" } th scope="col" { "Count" }
                } }
                tbody { @for r in &rows { tr {
                    td { (rfc3339(r.at)) }
                    td { (r.kind) @if let Some(d) = &r.detail { br; small { (d) } } }
                    td { (when(r.provider.as_deref())) }
                    td { (r.outcome) }
                    td { (when(r.client_addr.as_deref())) }
                    td { (r.count) }
                } } }
            } }
        }
        @if let Some(id) = older { p { a href={ "/audit?before=" (id) (scope) } { "Older events" } } }
    };
    frame("Audit trail", Some(&who), body).into_response()
}
