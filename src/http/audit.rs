//! `GET /api/audit`: the caller's own audit events, or with `scope=org` (admins) those acted in the org
//! `X-Org-ID` names; newest first, paged with `limit` and `before`; each with its count (aggregated
//! credential reads).

use axum::extract::State;
use axum::{Json, Router, routing};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, Auth, OrgHeader, acting_in};
use crate::clock::rfc3339;
use crate::db::AuditOwner;
use crate::orgs::Permission;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/audit", routing::get(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// How many events (1..=200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Only events older than this event id (a page's `nextBefore`).
    before: Option<i64>,
    /// `user` (default): the caller's own events; `org`: every member's events in the org `X-Org-ID` names
    /// (else the caller's personal org), for its admins.
    scope: Option<Scope>,
}

#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    User,
    Org,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    id: i64,
    /// With `scope=org`: the member who acted (for a background refresh, the org's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    user_id: Option<String>,
    /// `register`, `login`, `change_password`, `credential_store`, `credential_read`, `credential_refresh`,
    /// `credential_check`, `credential_delete`, `credential_connect`, `credential_onboard`.
    kind: String,
    provider: Option<String>,
    /// The connection's name (`default` unless named), for events about a connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
    /// `ok` or `failed`.
    outcome: String,
    client_addr: Option<String>,
    detail: Option<String>,
    /// When (RFC 3339); for aggregated credential reads, the first read of the row's minute.
    at: String,
    /// How many events the row stands for: 1, or (`credential_read` with `TOKENKEEPER_AUDIT_READS=aggregate`,
    /// the default) the reads of this connection by this caller address with this outcome within one minute.
    #[schema(minimum = 1)]
    count: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    events: Vec<EventView>,
    /// Pass as `before` for the next page; null on the last page.
    next_before: Option<i64>,
}

/// The caller's own audit events, newest first.
#[utoipa::path(
    get,
    path = "/api/audit",
    operation_id = "listAuditEvents",
    tag = "audit",
    params(Page, OrgHeader),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "A page of events", body = AuditPage),
        (status = 400, description = "`limit` out of range, a parameter is not an integer, an unknown `scope`, or a malformed `X-Org-ID`", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "`scope=org` by a member who is not an admin of the org", body = ErrorBody),
        (status = 404, description = "`scope=org` in an org the caller is not a member of", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
    headers: axum::http::HeaderMap,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 200".into()));
    }
    let by_org = page.scope == Some(Scope::Org);
    let org = match by_org {
        true => {
            let acting = acting_in(&state, &who, &headers).await?;
            acting.require(Permission::ReadOrgAudit)?;
            Some(acting.org)
        }
        false => None,
    };
    let owner = match &org {
        Some(org) => AuditOwner::Org(org.as_str()),
        None => AuditOwner::User(&who.user_id),
    };
    let rows = state
        .audit
        .list(owner, page.before, limit)
        .await
        .map_err(ApiError::database)?;
    let next = (i64::try_from(rows.len()) == Ok(limit))
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let events: Vec<EventView> = rows
        .into_iter()
        .map(|r| EventView {
            id: r.id,
            user_id: if by_org { r.user_id } else { None },
            kind: r.kind,
            provider: r.provider,
            name: r.connection,
            outcome: r.outcome,
            client_addr: r.client_addr,
            detail: r.detail,
            at: rfc3339(r.at),
            count: r.count,
        })
        .collect();
    Ok(Json(AuditPage {
        events,
        next_before: next,
    }))
}
