//! The connect page (a "Connect" button starting the provider's OAuth flow where one is configured, and a
//! form generated from the provider catalog) and disconnect. The connections page is `overview.rs`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::forms::{KEPT_NOTICE, Kept, Posted, Resumable};
use super::layout::{csrf, notice, page};
use super::session::Signed;
use crate::credentials::{Caller, ConnectionName, CredentialError, Target};
use crate::http::extract::{ApiQuery, ClientAddr};
use crate::http::{ApiError, AppState};
use crate::orgs::Permission;
use crate::providers::{FieldFormat, FieldSpec, ProviderSpec};

pub(super) fn caller(who: &Signed) -> Caller {
    Caller::new(who.acting.user.clone(), who.acting.org.clone())
}

fn provider(id: &str) -> Result<&'static ProviderSpec, ApiError> {
    crate::providers::find(id).ok_or_else(|| CredentialError::UnknownProvider(id.to_string()).into())
}

/// The connect form's field naming the connection (no catalog field is called so).
const NAME_FIELD: &str = "connection_name";

#[derive(serde::Deserialize)]
pub struct NameQuery {
    pub name: Option<String>,
}

/// A posted form with nothing but its CSRF token (disconnect, Check now).
#[derive(serde::Deserialize)]
pub struct Confirm {}

/// The connection of `provider` called `name` that the caller is about to change: refused when the name is
/// malformed or the caller's role may not write connections.
pub(super) fn writable(who: &Signed, provider: &str, name: Option<&str>) -> Result<Target, ApiError> {
    let target = target(provider, name)?;
    who.acting.require(Permission::WriteConnections)?;
    Ok(target)
}

/// The connection of `provider` called `name` (empty or absent: `default`).
pub(super) fn target(provider: &str, name: Option<&str>) -> Result<Target, ApiError> {
    match name.filter(|n| !n.is_empty()) {
        None => Ok(Target::from(provider)),
        Some(n) => ConnectionName::parse(n)
            .map(|n| Target::new(provider, n))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "The connection name must be 1 to 40 lowercase letters, digits and '-', starting with a letter \
                 or digit"
                        .into(),
                )
            }),
    }
}

/// Whether `n` is a connection name (what the connect flow's callback may add to the console's URL).
pub(super) fn is_name(n: &str) -> bool {
    ConnectionName::parse(n).is_some()
}

/// The page of a connection: its provider's name, and its own name unless it is the default one.
pub(super) fn title_of(c: &Target) -> String {
    match c.name.is_default() {
        true => provider_name(&c.provider).to_string(),
        false => format!("{} ({})", provider_name(&c.provider), c.name),
    }
}

pub(super) fn provider_name(id: &str) -> &str {
    crate::providers::find(id).map_or(id, |p| p.name)
}

/// The connect page; after a post whose session had ended, its non-secret fields filled in again.
pub async fn connect_page(State(state): State<AppState>, who: Signed, Path(id): Path<String>, kept: Kept) -> Response {
    let spec = match provider(&id).and_then(|p| Ok(who.acting.require(Permission::WriteConnections).map(|()| p)?)) {
        Ok(p) => p,
        Err(e) => return who.fail(e),
    };
    if !kept.resumed() {
        return connect_form(&state, &who, spec, &Map::new(), None);
    }
    // The cookie held only non-secret fields; `field` fills no secret one in anyway.
    let page = connect_form(&state, &who, spec, kept.fields(), Some(Notice::Kept));
    kept.answer(page)
}

/// Whether the connect form of `spec` keeps its field `name` through a sign-in: the connection's name and
/// the catalog's non-secret fields.
fn keeps(spec: &ProviderSpec, name: &str) -> bool {
    name == NAME_FIELD || spec.fields.iter().any(|f| f.name == name && !f.secret)
}

/// A message above the connect form.
enum Notice<'a> {
    Error(&'a str),
    Kept,
}

/// The connect page; where the provider has a flow, its authorize endpoint's origin is added to the
/// page's `form-action` (Chromium holds a form's redirect to another origin to it).
fn connect_form(
    state: &AppState,
    who: &Signed,
    spec: &ProviderSpec,
    kept: &Map<String, Value>,
    message: Option<Notice>,
) -> Response {
    let authorize = state.connect.authorize_origin(spec);
    let body = html! {
        p { (spec.docs) }
        @match message {
            Some(Notice::Error(e)) => (notice(true, e)),
            Some(Notice::Kept) => (notice(false, KEPT_NOTICE)),
            None => {}
        }
        @if authorize.is_some() { (super::oauth::button(who, spec)) }
        @if !spec.variants.is_empty() {
            p { "Fill in the fields of one of these shapes:" }
            ul { @for v in spec.variants { li { strong { (v.name) } ": " (v.description) " (" (v.fields.join(", ")) ")" } } }
        }
        form.stack method="post" action={ "/connect/" (spec.id) } {
            (csrf(who))
            label for="connection-name" { "Connection name (optional)" }
            input #connection-name name=(NAME_FIELD) type="text" autocomplete="off" spellcheck="false"
                value=[kept.get(NAME_FIELD).and_then(Value::as_str)] aria-describedby="connection-name-help";
            small #connection-name-help {
                "Tells several connections to " (spec.name) " apart: lowercase letters, digits and '-'. Empty: default."
            }
            @for f in spec.fields { (field(f, kept.get(f.name).and_then(Value::as_str), spec.variants.is_empty())) }
            button type="submit" { "Connect " (spec.name) }
        }
        p { a href="/" { "Cancel" } }
    };
    let page = page(&format!("Connect {}", spec.name), Some(who), body);
    match authorize {
        Some(origin) => super::with_form_action(&origin, page),
        None => page.into_response(),
    }
}

/// One input of the connect form: secret fields are password inputs and never filled back in.
fn field(f: &FieldSpec, kept: Option<&str>, single_shape: bool) -> Markup {
    let id = format!("f-{}", f.name);
    let help = format!("{id}-help");
    let required = single_shape && f.required && f.default.is_none() && !f.generated_if_absent;
    let value = if f.secret { None } else { kept };
    html! {
        label for=(id) { (f.name) @if !required { " (optional)" } }
        @match f.format {
            FieldFormat::GcpServiceAccountJson => {
                textarea id=(id) name=(f.name) rows="6" aria-describedby=(help) required[required] { (value.unwrap_or_default()) }
            }
            FieldFormat::OneOf { values } => {
                select id=(id) name=(f.name) aria-describedby=(help) {
                    @if !required { option value="" { "(default)" } }
                    @for v in values { option value=(v) selected[value == Some(*v)] { (v) } }
                }
            }
            _ => {
                input id=(id) name=(f.name) type=(if f.secret { "password" } else { "text" })
                    autocomplete="off" spellcheck="false" value=[value] aria-describedby=(help) required[required];
            }
        }
        small id=(help) { (f.description) }
    }
}

pub async fn connect(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    form: Resumable<Map<String, Value>>,
) -> Response {
    let Posted { who, mut form } = match form {
        Resumable::Posted(posted) => posted,
        // Nothing is stored; only fields the catalog says are not secret are kept for the form.
        Resumable::Ended(ended) => return ended.back(|name| provider(&id).is_ok_and(|spec| keeps(spec, name))),
    };
    let spec = match provider(&id).and_then(|p| Ok(who.acting.require(Permission::WriteConnections).map(|()| p)?)) {
        Ok(p) => p,
        Err(e) => return who.fail(e),
    };
    let name = form.remove(NAME_FIELD);
    let target = match target(spec.id, name.as_ref().and_then(Value::as_str)) {
        Ok(t) => t,
        Err(e) => return who.fail(e),
    };
    // Empty inputs are fields not given (their defaults apply); names outside the catalog are refused
    // by the validation, as in the API.
    let body: Map<String, Value> = form
        .into_iter()
        .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
        .collect();
    match state
        .credentials
        .store_tokens_in_db(&caller(&who), &Value::Object(body.clone()), target.clone(), &addr)
        .await
    {
        Ok(stored) => {
            let c = &stored.connection;
            let outcome = match c.last_checked_at {
                Some(_) => "the provider accepted it",
                None => "stored without a check",
            };
            let status = c.status.as_str().replace('_', " ");
            let body = html! {
                (notice(false, &format!("{} is connected: {outcome}; status {status}.", title_of(&target))))
                @if let Some(external_id) = stored.generated_external_id {
                    p { "The external id to put in the role's trust policy (shown only this once): " code { (external_id) } }
                }
                p { a href="/" { "Back to the connections" } }
            };
            page(&format!("{} connected", spec.name), Some(&who), body).into_response()
        }
        Err(e) => {
            let (status, message) = explained(e);
            let mut kept = body;
            kept.extend(name.map(|n| (NAME_FIELD.to_string(), n)));
            let mut page = connect_form(&state, &who, spec, &kept, Some(Notice::Error(&message)));
            *page.status_mut() = status;
            page
        }
    }
}

/// A failed store as the page says it: a check's finding is added (`HTTP 401`, `invalid_auth`: the
/// provider's answer, never the credential).
fn explained(e: CredentialError) -> (axum::http::StatusCode, String) {
    let detail = match &e {
        CredentialError::CheckRejected { detail, .. } | CredentialError::CheckUnreachable { detail, .. } => {
            Some(detail.clone())
        }
        _ => None,
    };
    let (status, message) = ApiError::from(e).status_and_message();
    match detail {
        Some(d) => (status, format!("{message} ({d}): nothing was stored.")),
        None => (status, message),
    }
}

pub async fn disconnect_page(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<NameQuery>,
) -> Response {
    let target = match target(&id, q.name.as_deref()) {
        Ok(t) => t,
        Err(e) => return who.fail(e),
    };
    if let Err(e) = who.acting.require(Permission::WriteConnections) {
        return who.fail(e);
    }
    if let Err(e) = state.credentials.connection(&who.acting.org, target.clone()).await {
        return who.fail(e);
    }
    let name = title_of(&target);
    let body = html! {
        p { "The stored credential for " (name) " is deleted from the secret store. Anything that reads it through Tokenkeeper stops working until it is connected again." }
        form.inline method="post" action={ "/disconnect/" (id) "?name=" (target.name) } {
            (csrf(&who))
            button.danger type="submit" { "Disconnect " (name) }
        }
        " " a href="/" { "Cancel" }
    };
    page(&format!("Disconnect {name}?"), Some(&who), body).into_response()
}

pub async fn disconnect(
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
    match state.credentials.delete(&caller(&who), target, &addr).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => who.fail(e),
    }
}
