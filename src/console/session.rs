//! The console's cookie session and its forms' CSRF tokens.
//!
//! Signing in is `PasswordService::login` (its rate limits and audit events included); the session token
//! it issues travels in an HttpOnly, `SameSite=Lax` cookie (`Secure` behind https) instead of a Bearer
//! header, and is checked by `Authenticator::session` like one, so a password change or a sign-out ends
//! it here too. Every form carries a CSRF token derived from the session token (HMAC), which a page of
//! another site cannot read; a post without the right one is refused (403) before anything is done
//! (`forms.rs`). The sign-in form, before any session exists, uses a random token kept in a cookie of its
//! own.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maud::html;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::forms::{KEPT_COOKIE, Posted, form_fields};
use super::layout::{error_page, notice, page};
use super::next::{local_path, to_sign_in};
use crate::config::ConsoleSettings;
use crate::http::extract::{ApiQuery, ClientAddr};
use crate::http::{ApiError, AppState};
use crate::identity::{AuthError, Identity, Scope};
use crate::ids::UserId;
use crate::orgs::{Acting, Channel, OrgError, OrgView};
use crate::passwords::Caller;

/// The change-password page, and where a caller who must change their password first is sent.
pub const PASSWORD_PAGE: &str = "/password";
const PASSWORD_REQUIRED: &str = "/password?required=1";
/// The cookie holding the session token.
pub const SESSION_COOKIE: &str = "tk_session";
/// The org the console acts in (an id; membership is checked on every request).
const ORG_COOKIE: &str = "tk_org";
/// The sign-in form's CSRF token, before a session exists.
const SIGN_IN_COOKIE: &str = "tk_signin";
/// The name of every form's CSRF field.
pub const CSRF_FIELD: &str = "csrf";
pub(super) const CSRF_REFUSED: &str = "This form has expired or did not come from this console: nothing was changed. \
    Reload the page and try again.";

/// A signed-in caller of a console page, in the org the console acts in.
pub struct Signed {
    pub who: Identity,
    pub acting: Acting,
    /// Every org of the caller, for the switcher.
    pub orgs: Vec<OrgView>,
    /// The CSRF token of this session's forms.
    pub csrf: String,
}

impl Signed {
    /// An error as a page, with this caller's navigation.
    pub fn fail(&self, e: impl Into<ApiError>) -> Response {
        let (status, message) = e.into().status_and_message();
        error_page(status, &message, Some(self))
    }
}

/// An error outside a signed-in page.
fn fail(e: impl Into<ApiError>) -> Response {
    let (status, message) = e.into().status_and_message();
    error_page(status, &message, None)
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

pub(super) fn set_cookie(settings: &ConsoleSettings, name: &str, value: &str) -> (header::HeaderName, String) {
    let secure = if settings.secure_cookies { "; Secure" } else { "" };
    let expire = if value.is_empty() { "; Max-Age=0" } else { "" };
    (
        header::SET_COOKIE,
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{expire}"),
    )
}

/// The CSRF token of a session: an HMAC of a fixed label under the session token.
pub(super) fn csrf_of(session_token: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(session_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"tokenkeeper console csrf");
    hex::encode(mac.finalize().into_bytes())
}

pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

/// Why a request has no signed-in caller.
pub(super) enum Unsigned {
    /// The session cookie names a session that has expired or was ended: its token (which still gives the
    /// CSRF token of the forms it signed).
    Ended { token: String },
    /// Anything else, as its answer (to sign in, to change the password first, an error page).
    Other(Response),
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Self::resolve(parts, state).await.map_err(|u| match u {
            Unsigned::Ended { .. } => to_sign_in(parts.uri.path(), true),
            Unsigned::Other(answer) => answer,
        })
    }
}

impl Signed {
    /// The caller of a request, or why there is none.
    pub(super) async fn resolve(parts: &Parts, state: &AppState) -> Result<Self, Unsigned> {
        let other = |e: ApiError| Unsigned::Other(fail(e));
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Unsigned::Other(to_sign_in(parts.uri.path(), false)));
        };
        // A caller who must change their password first may use the page that changes it, and sign out.
        let scope = match parts.uri.path() {
            PASSWORD_PAGE | "/sign-out" => Scope::OwnAccount,
            _ => Scope::Everything,
        };
        let who = match state.authenticator.session(token, scope).await {
            Ok(who) => who,
            Err(AuthError::Unauthenticated) => {
                return Err(Unsigned::Ended {
                    token: token.to_string(),
                });
            }
            Err(AuthError::PasswordChangeRequired) => {
                return Err(Unsigned::Other(Redirect::to(PASSWORD_REQUIRED).into_response()));
            }
            Err(e) => return Err(other(e.into())),
        };
        let user = UserId::from(who.user_id.clone());
        let chosen = cookie(&parts.headers, ORG_COOKIE);
        let acting = match state.orgs.acting(user.clone(), chosen, Channel::BrowserCookie).await {
            Ok(acting) => acting,
            // An org the caller has left (or a stale cookie): their personal org.
            Err(OrgError::OrgNotFound | OrgError::BadOrgId) if chosen.is_some() => state
                .orgs
                .acting(user.clone(), None, Channel::BrowserCookie)
                .await
                .map_err(|e| other(e.into()))?,
            Err(e) => return Err(other(e.into())),
        };
        let orgs = state.orgs.list(&user).await.map_err(|e| other(e.into()))?;
        Ok(Self {
            csrf: csrf_of(token),
            who,
            acting,
            orgs,
        })
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    expired: Option<String>,
}

pub async fn sign_in_page(
    Extension(settings): Extension<ConsoleSettings>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SignInQuery>,
) -> Response {
    let (token, fresh) = match cookie(&headers, SIGN_IN_COOKIE) {
        Some(t) => (t.to_string(), false),
        None => (random_token(), true),
    };
    let message = q
        .expired
        .is_some()
        .then_some("Your session has expired: sign in again.");
    let form = sign_in_form(&token, &local_path(q.next.as_deref()), "", message);
    let cookies = fresh.then(|| set_cookie(&settings, SIGN_IN_COOKIE, &token));
    (AppendHeaders(cookies), form).into_response()
}

fn sign_in_form(token: &str, next: &str, email: &str, message: Option<&str>) -> maud::Markup {
    let body = html! {
        @if let Some(m) = message { (notice(true, m)) }
        form.stack method="post" action="/sign-in" {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            input type="hidden" name="next" value=(next);
            label for="email" { "E-mail" }
            input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    };
    page("Sign in", None, body)
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    email: String,
    password: Option<SecretString>,
    next: Option<String>,
    csrf: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    Extension(settings): Extension<ConsoleSettings>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_json::from_value::<SignInForm>(serde_json::Value::Object(form_fields(&body))) else {
        return fail(ApiError::BadRequest("The form is incomplete".into()));
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE);
    let next = local_path(form.next.as_deref());
    if !matches!((expected, form.csrf.as_deref()), (Some(e), Some(s)) if same(e, s)) {
        return error_page(StatusCode::FORBIDDEN, CSRF_REFUSED, None);
    }
    let token = expected.unwrap_or_default();
    let password = form.password.unwrap_or_else(|| SecretString::from(String::new()));
    let caller = Caller { client_addr: &addr };
    match state.passwords.login(&form.email, password, &caller).await {
        Ok(done) => {
            // Back to a form posted after its session ended (`forms.rs`): in the org it was posted in
            // (membership is checked again); else the caller's personal org.
            let resuming = cookie(&headers, KEPT_COOKIE).is_some();
            let cookies = [
                Some(set_cookie(
                    &settings,
                    SESSION_COOKIE,
                    done.session.token.expose_secret(),
                )),
                Some(set_cookie(&settings, SIGN_IN_COOKIE, "")),
                (!resuming).then(|| set_cookie(&settings, ORG_COOKIE, "")),
            ];
            (AppendHeaders(cookies.into_iter().flatten()), Redirect::to(&next)).into_response()
        }
        Err(e) => {
            // The e-mail is kept; the password is never sent back.
            let (status, message) = ApiError::from(e).status_and_message();
            (status, sign_in_form(token, &next, &form.email, Some(&message))).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

pub async fn sign_out(
    State(state): State<AppState>,
    Extension(settings): Extension<ConsoleSettings>,
    posted: Posted<NoFields>,
) -> Response {
    if let Err(e) = state.passwords.logout(posted.who.who.session_hash()).await {
        return posted.who.fail(e);
    }
    let cookies = [
        set_cookie(&settings, SESSION_COOKIE, ""),
        set_cookie(&settings, ORG_COOKIE, ""),
        set_cookie(&settings, KEPT_COOKIE, ""),
    ];
    (AppendHeaders(cookies), Redirect::to("/sign-in")).into_response()
}

#[derive(Deserialize)]
pub struct OrgForm {
    org: String,
}

pub async fn switch_org(
    State(state): State<AppState>,
    Extension(settings): Extension<ConsoleSettings>,
    Posted { who, form }: Posted<OrgForm>,
) -> Response {
    let user = who.acting.user.clone();
    match state.orgs.acting(user, Some(&form.org), Channel::BrowserCookie).await {
        Ok(acting) => act_in(&settings, acting.org.as_str(), "/"),
        Err(e) => who.fail(e),
    }
}

/// From now on the console acts in `org` (a membership checked already, and again on each request); then
/// on to `to`.
pub(super) fn act_in(settings: &ConsoleSettings, org: &str, to: &str) -> Response {
    (AppendHeaders([set_cookie(settings, ORG_COOKIE, org)]), Redirect::to(to)).into_response()
}
