//! `/api/orgs`: the caller's orgs, new orgs, and an org's members (admins only) (`docs/ORGS.md`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router, routing};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath as Path, Auth, channel};
use crate::ids::UserId;
use crate::orgs::{Acting, MemberView, OrgView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/orgs", routing::get(list).post(create))
        .route("/api/orgs/{org}/members", routing::get(members).post(add_member))
        .route(
            "/api/orgs/{org}/members/{user}",
            routing::patch(set_role).delete(remove_member),
        )
}

#[derive(Serialize, ToSchema)]
pub struct OrgList {
    /// The caller's personal org first.
    pub orgs: Vec<OrgView>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewOrg {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewMember {
    /// The email of a user registered with Tokenkeeper.
    pub email: String,
    /// `viewer`, `editor` or `admin`.
    #[schema(example = "editor")]
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RoleChange {
    /// `viewer`, `editor` or `admin`.
    #[schema(example = "viewer")]
    pub role: String,
}

/// The caller acting in the org of the path.
async fn in_org(state: &AppState, who: crate::identity::Identity, org: &str) -> Result<Acting, ApiError> {
    let how = channel(&who);
    Ok(state.orgs.acting(UserId::from(who.user_id), Some(org), how).await?)
}

/// The caller's orgs, with their role in each.
#[utoipa::path(
    get,
    path = "/api/orgs",
    operation_id = "listOrgs",
    tag = "orgs",
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The caller's orgs", body = OrgList),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn list(State(state): State<AppState>, Auth(who): Auth) -> Result<Json<OrgList>, ApiError> {
    let user = UserId::from(who.user_id.clone());
    // A user first seen here gets their personal org now, like on any other route.
    state.orgs.acting(user.clone(), None, channel(&who)).await?;
    Ok(Json(OrgList {
        orgs: state.orgs.list(&user).await?,
    }))
}

/// Create an org; the caller is its admin.
#[utoipa::path(
    post,
    path = "/api/orgs",
    operation_id = "createOrg",
    tag = "orgs",
    request_body = NewOrg,
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 201, description = "Created", body = OrgView),
        (status = 400, description = "Malformed body, or a name that is empty, too long or has control characters", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    ApiJson(body): ApiJson<NewOrg>,
) -> Result<(StatusCode, Json<OrgView>), ApiError> {
    let org = state.orgs.create(&UserId::from(who.user_id), &body.name).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// The org's members (admins only).
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/members",
    operation_id = "listMembers",
    tag = "orgs",
    params(("org" = String, Path, description = "An org id from `GET /api/orgs`")),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The members", body = MemberList),
        (status = 400, description = "A malformed org id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin of the org", body = ErrorBody),
        (status = 404, description = "An org the caller is not a member of", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn members(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(org): Path<String>,
) -> Result<Json<MemberList>, ApiError> {
    let acting = in_org(&state, who, &org).await?;
    Ok(Json(MemberList {
        members: state.orgs.members(&acting).await?,
    }))
}

/// Add a registered user to the org (admins only).
#[utoipa::path(
    post,
    path = "/api/orgs/{org}/members",
    operation_id = "addMember",
    tag = "orgs",
    params(("org" = String, Path, description = "An org id from `GET /api/orgs`")),
    request_body = NewMember,
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 201, description = "Added", body = MemberView),
        (status = 400, description = "Malformed body or org id, or a role that does not exist", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin of the org", body = ErrorBody),
        (status = 404, description = "An org the caller is not a member of, or no user with that email", body = ErrorBody),
        (status = 409, description = "The user is already a member", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn add_member(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<NewMember>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let acting = in_org(&state, who, &org).await?;
    let member = state.orgs.add_member(&acting, &body.email, &body.role).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// Change a member's role (admins only); the last admin cannot be demoted.
#[utoipa::path(
    patch,
    path = "/api/orgs/{org}/members/{user}",
    operation_id = "setMemberRole",
    tag = "orgs",
    params(
        ("org" = String, Path, description = "An org id from `GET /api/orgs`"),
        ("user" = String, Path, description = "The member's user id"),
    ),
    request_body = RoleChange,
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 200, description = "The member with the new role", body = MemberView),
        (status = 400, description = "Malformed body or org id, or a role that does not exist", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin of the org", body = ErrorBody),
        (status = 404, description = "An org the caller is not a member of, or a user who is not a member", body = ErrorBody),
        (status = 409, description = "The member is the org's last admin", body = ErrorBody),
        (status = 413, description = "Request body too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn set_role(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((org, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<MemberView>, ApiError> {
    let acting = in_org(&state, who, &org).await?;
    Ok(Json(
        state.orgs.set_role(&acting, &UserId::from(user), &body.role).await?,
    ))
}

/// Remove a member (admins only; an admin may remove themselves); the last admin cannot be removed.
#[utoipa::path(
    delete,
    path = "/api/orgs/{org}/members/{user}",
    operation_id = "removeMember",
    tag = "orgs",
    params(
        ("org" = String, Path, description = "An org id from `GET /api/orgs`"),
        ("user" = String, Path, description = "The member's user id"),
    ),
    security(("bearer" = []), ("authjs_session_cookie" = []), ("internal_user_id" = [], "internal_secret" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A malformed org id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin of the org", body = ErrorBody),
        (status = 404, description = "An org the caller is not a member of, or a user who is not a member", body = ErrorBody),
        (status = 409, description = "The member is the org's last admin", body = ErrorBody),
        (status = 500, description = "Internal error (details only in the log)", body = ErrorBody),
    ),
)]
async fn remove_member(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((org, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let acting = in_org(&state, who, &org).await?;
    state.orgs.remove(&acting, &UserId::from(user)).await?;
    Ok(StatusCode::NO_CONTENT)
}
