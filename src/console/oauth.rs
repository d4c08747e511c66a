//! The console's "Connect" button for OAuth providers: it starts the same connect flow as
//! `POST /api/connect/{provider}` (`docs/CONNECT.md`) and sends the browser to the provider's consent page.
//! The flow's callback brings the browser back to the connections page, which shows the outcome.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::connections::caller;
use super::forms::Posted;
use super::layout::csrf;
use super::session::Signed;
use crate::http::{ApiError, AppState};
use crate::orgs::Permission;
use crate::providers::ProviderSpec;

/// The form starting `spec`'s flow (shown when its client id is set).
pub fn button(who: &Signed, spec: &ProviderSpec) -> Markup {
    html! {
        form.stack.oauth method="post" action={ "/connect/" (spec.id) "/authorize" } {
            (csrf(who))
            label for="oauth-name" { "Connection name (optional)" }
            input #oauth-name name="connection_name" type="text" autocomplete="off" spellcheck="false"
                aria-describedby="oauth-name-help";
            small #oauth-name-help { "Empty: default. You agree on " (spec.name) "'s own page, then come back here." }
            button type="submit" { "Connect with " (spec.name) }
        }
        h2 { "Or give the credential yourself" }
    }
}

#[derive(serde::Deserialize)]
pub struct StartForm {
    #[serde(default)]
    connection_name: String,
}

/// Starts the flow and sends the browser to the provider's authorization URL.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { who, form }: Posted<StartForm>,
) -> Response {
    if let Err(e) = who.acting.require(Permission::WriteConnections) {
        return who.fail(e);
    }
    let name = Some(form.connection_name).filter(|n| !n.is_empty());
    match state.connect.start_from_console(&caller(&who), &id, name).await {
        Ok(started) => Redirect::to(&started.authorization_url).into_response(),
        Err(e) => who.fail(ApiError::from(e)),
    }
}
