//! Change password: the API's rules and messages (`PasswordService::change_password`); the caller's own
//! session stays, every other one ends.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use secrecy::{ExposeSecret, SecretString};

use super::forms::Posted;
use super::layout::{csrf, notice, page as frame};
use super::session::{PASSWORD_PAGE, Signed};
use crate::http::extract::{ApiQuery, ClientAddr};
use crate::http::{ApiError, AppState};
use crate::passwords::Caller;

fn page_of(who: &Signed, message: Option<(bool, &str)>) -> maud::Markup {
    let body = html! {
        @if let Some((error, text)) = message { (notice(error, text)) }
        form.stack method="post" action=(PASSWORD_PAGE) {
            (csrf(who))
            label for="current" { "Current password" }
            input #current type="password" name="current_password" autocomplete="current-password" required;
            label for="new" { "New password" }
            input #new type="password" name="new_password" autocomplete="new-password" minlength="8" required aria-describedby="new-help";
            small #new-help { "At least 8 characters. Your other sessions are signed out." }
            label for="confirm" { "New password again" }
            input #confirm type="password" name="confirm_password" autocomplete="new-password" minlength="8" required;
            button type="submit" { "Change password" }
        }
    };
    frame("Change password", Some(who), body)
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    required: Option<String>,
}

/// `?required=1`: the console sent the caller here because they must change their password first.
pub async fn page(who: Signed, ApiQuery(q): ApiQuery<PageQuery>) -> Response {
    let required = q.required.is_some().then_some((true, REQUIRED));
    page_of(&who, required).into_response()
}

const REQUIRED: &str = "Your password was set for you: choose your own before using the console.";

#[derive(serde::Deserialize)]
pub struct Change {
    current_password: SecretString,
    new_password: SecretString,
    confirm_password: SecretString,
}

pub async fn change(State(state): State<AppState>, ClientAddr(addr): ClientAddr, posted: Posted<Change>) -> Response {
    let Posted { who, form } = posted;
    if form.new_password.expose_secret() != form.confirm_password.expose_secret() {
        let message = "The new password and its repetition differ";
        return (StatusCode::BAD_REQUEST, page_of(&who, Some((true, message)))).into_response();
    }
    // The API's rule, with the field named as the form names it.
    if let Err(e) = state
        .passwords
        .check_new_password("The new password", &form.new_password)
    {
        let (status, message) = ApiError::from(e).status_and_message();
        return (status, page_of(&who, Some((true, &message)))).into_response();
    }
    let caller = Caller { client_addr: &addr };
    let res = state
        .passwords
        .change_password(
            &who.who.user_id,
            form.current_password,
            form.new_password,
            who.who.session_hash(),
            &caller,
        )
        .await;
    match res {
        Ok(()) => page_of(&who, Some((false, "Password changed successfully"))).into_response(),
        Err(e) => {
            let (status, message) = ApiError::from(e).status_and_message();
            (status, page_of(&who, Some((true, &message)))).into_response()
        }
    }
}
