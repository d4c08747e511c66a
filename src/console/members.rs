//! Members and roles of the org the console acts in: admins only (`Permission::ManageMembers`), which
//! `OrgService` checks again on every change.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::forms::{KEPT_NOTICE, Kept, Posted, Resumable};
use super::layout::{csrf, notice, page as frame};
use super::session::{Signed, act_in};
use crate::config::ConsoleSettings;
use crate::http::AppState;
use crate::ids::UserId;
use crate::orgs::{OrgError, Permission, Role};

const ROLES: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

/// The members page; after an "Add a member" post whose session had ended, its e-mail and role filled in
/// again.
pub async fn page(State(state): State<AppState>, who: Signed, kept: Kept) -> Response {
    if let Err(e) = who.acting.require(Permission::ManageMembers) {
        return who.fail(e);
    }
    let members = match state.orgs.members(&who.acting).await {
        Ok(m) => m,
        Err(e) => return who.fail(e),
    };
    let body = html! {
        div.scroll { table {
            thead { tr { th scope="col" { "Member" } th scope="col" { "Role" } th scope="col" { span.visually-hidden { "Remove" } } } }
            tbody {
                @for m in &members {
                    @let label = m.email.clone().or_else(|| m.name.clone()).unwrap_or_else(|| m.user_id.clone());
                    tr {
                        td { (label) }
                        td {
                            form.inline method="post" action={ "/members/" (m.user_id) "/role" } {
                                (csrf(&who))
                                label.visually-hidden for={ "role-" (m.user_id) } { "Role of " (label) }
                                select id={ "role-" (m.user_id) } name="role" {
                                    @for r in ROLES { option value=(r.as_str()) selected[r == m.role] { (r.as_str()) } }
                                }
                                button type="submit" { "Change" }
                            }
                        }
                        td {
                            form.inline method="post" action={ "/members/" (m.user_id) "/remove" } {
                                (csrf(&who))
                                button.danger type="submit" aria-label={ "Remove " (label) } { "Remove" }
                            }
                        }
                    }
                }
            }
        } }
        h2 { "Add a member" }
        @if kept.resumed() { (notice(false, KEPT_NOTICE)) }
        form.stack method="post" action="/members" {
            (csrf(&who))
            label for="member-email" { "E-mail of a registered user" }
            input #member-email type="email" name="email" value=[kept.get("email")] required;
            label for="member-role" { "Role" }
            select #member-role name="role" {
                @for r in ROLES { option value=(r.as_str()) selected[kept.get("role") == Some(r.as_str())] { (r.as_str()) } }
            }
            button type="submit" { "Add member" }
        }
        h2 { "New organization" }
        form.stack method="post" action="/orgs" {
            (csrf(&who))
            label for="org-name" { "Name" }
            input #org-name type="text" name="name" maxlength="100" required aria-describedby="org-name-help";
            small #org-name-help { "You become its admin; the console switches to it." }
            button type="submit" { "Create organization" }
        }
    };
    kept.answer(frame("Members", Some(&who), body))
}

/// A change done: the members page again; refused: the error page.
fn back_to_members<T>(who: &Signed, done: Result<T, OrgError>) -> Response {
    match done {
        Ok(_) => Redirect::to("/members").into_response(),
        Err(e) => who.fail(e),
    }
}

#[derive(serde::Deserialize)]
pub struct NewOrg {
    name: String,
}

/// Creates an org with the caller as its admin and acts in it from now on.
pub async fn create_org(
    State(state): State<AppState>,
    Extension(settings): Extension<ConsoleSettings>,
    Posted { who, form }: Posted<NewOrg>,
) -> Response {
    match state.orgs.create(&who.acting.user, &form.name).await {
        Ok(org) => act_in(&settings, &org.id, "/members"),
        Err(e) => who.fail(e),
    }
}

#[derive(serde::Deserialize)]
pub struct Add {
    email: String,
    role: String,
}

pub async fn add(State(state): State<AppState>, form: Resumable<Add>) -> Response {
    let Posted { who, form } = match form {
        Resumable::Posted(posted) => posted,
        // Nobody is added; the e-mail and role are kept for the form.
        Resumable::Ended(ended) => return ended.back(|name| matches!(name, "email" | "role")),
    };
    back_to_members(&who, state.orgs.add_member(&who.acting, &form.email, &form.role).await)
}

#[derive(serde::Deserialize)]
pub struct SetRole {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    Path(user): Path<String>,
    Posted { who, form }: Posted<SetRole>,
) -> Response {
    back_to_members(
        &who,
        state.orgs.set_role(&who.acting, &UserId::from(user), &form.role).await,
    )
}

#[derive(serde::Deserialize)]
pub struct Remove {}

pub async fn remove(
    State(state): State<AppState>,
    Path(user): Path<String>,
    Posted { who, .. }: Posted<Remove>,
) -> Response {
    back_to_members(&who, state.orgs.remove(&who.acting, &UserId::from(user)).await)
}
