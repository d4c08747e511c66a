//! Posted forms: the CSRF check of every console form, and a form posted after its session ended.
//!
//! A form posted with an expired or ended session is never done: nothing is changed, the caller is sent to
//! sign in again. Where its CSRF token is the ended session's (the session cookie still holds that
//! session's token, so the post came from this console's own page, not another site), the form's
//! non-secret fields, which its handler names, are kept in the `tk_kept` cookie (HttpOnly, `SameSite=Lax`,
//! 15 minutes) while the caller signs in; the form's page, shown next, fills them in again and drops the
//! cookie. Secret fields are never kept: not in the cookie, not in a URL, not in a log. The kept fields
//! are not put in the URL either, so that no link from elsewhere can fill in a form (a connect form's URL
//! pointing at another host, for a key to be typed in next to it).

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::layout::error_page;
use super::next::to_sign_in;
use super::session::{CSRF_FIELD, CSRF_REFUSED, Signed, Unsigned, cookie, csrf_of, same, set_cookie};
use crate::config::ConsoleSettings;
use crate::http::AppState;

/// The cookie keeping a form's non-secret fields while its caller signs in again.
pub(super) const KEPT_COOKIE: &str = "tk_kept";
/// The kept fields' key naming the form's page (no form has a field so named).
const FORM_KEY: &str = "_form";
/// How long the kept fields wait for the caller to sign in.
const KEPT_SECS: u32 = 15 * 60;
/// Kept fields longer than this (urlencoded) are not kept: a cookie holds about 4 KiB.
const KEPT_MAX: usize = 3000;
/// What the form's page says when it shows kept fields.
pub const KEPT_NOTICE: &str = "Your session had expired, so nothing was done. The fields below are filled in \
    again as you left them; secret fields are never kept: enter them again.";

/// A form posted by a signed-in caller with the right CSRF token, its fields as `T`.
pub struct Posted<T> {
    pub who: Signed,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let who = Signed::from_request_parts(&mut parts, state).await?;
        Self::of(who, Request::from_parts(parts, body), state).await
    }
}

impl<T: DeserializeOwned> Posted<T> {
    async fn of(who: Signed, req: Request, state: &AppState) -> Result<Self, Response> {
        let fields = checked(req, state, &who.csrf, Some(&who)).await?;
        // The message names no value: a field may hold a secret.
        let form = serde_json::from_value(Value::Object(fields))
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, "The form is incomplete", Some(&who)))?;
        Ok(Self { who, form })
    }
}

/// The form's fields, its CSRF token `csrf` (else 403, before anything is done).
async fn checked(
    req: Request,
    state: &AppState,
    csrf: &str,
    who: Option<&Signed>,
) -> Result<Map<String, Value>, Response> {
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|e| error_page(e.status(), "The form could not be read", who))?;
    let mut fields = form_fields(&bytes);
    let sent = fields.remove(CSRF_FIELD);
    if !sent.as_ref().and_then(Value::as_str).is_some_and(|t| same(t, csrf)) {
        return Err(error_page(StatusCode::FORBIDDEN, CSRF_REFUSED, who));
    }
    Ok(fields)
}

/// A urlencoded form's fields as strings (the last of a repeated name wins).
pub(super) fn form_fields(body: &[u8]) -> Map<String, Value> {
    url::form_urlencoded::parse(body)
        .into_owned()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// A form posted by a signed-in caller ([`Posted`]), or after its session ended ([`Ended`]).
pub enum Resumable<T> {
    Posted(Posted<T>),
    Ended(Ended),
}

/// A form posted after its session ended, with that session's CSRF token: nothing is done with it.
pub struct Ended {
    path: String,
    fields: Map<String, Value>,
    settings: ConsoleSettings,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Resumable<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        match Signed::resolve(&parts, state).await {
            Ok(who) => Ok(Self::Posted(
                Posted::of(who, Request::from_parts(parts, body), state).await?,
            )),
            Err(Unsigned::Other(answer)) => Err(answer),
            Err(Unsigned::Ended { token }) => {
                let path = parts.uri.path().to_string();
                let settings = settings_of(&parts);
                let fields = checked(Request::from_parts(parts, body), state, &csrf_of(&token), None).await?;
                Ok(Self::Ended(Ended { path, fields, settings }))
            }
        }
    }
}

/// The console's settings (its routes carry them); without them, cookies are `Secure`.
fn settings_of(parts: &Parts) -> ConsoleSettings {
    parts
        .extensions
        .get::<ConsoleSettings>()
        .copied()
        .unwrap_or(ConsoleSettings {
            enabled: true,
            secure_cookies: true,
        })
}

impl Ended {
    /// To sign in again (the page says the session expired), then back to the form's page (`GET` of the
    /// posted path), the non-empty fields `keep` accepts kept for it; nothing else of the form is kept.
    pub fn back(self, keep: impl Fn(&str) -> bool) -> Response {
        let mut kept = url::form_urlencoded::Serializer::new(String::new());
        kept.append_pair(FORM_KEY, &self.path);
        for (name, value) in &self.fields {
            if let Some(v) = value
                .as_str()
                .filter(|v| !v.is_empty() && name != FORM_KEY && keep(name))
            {
                kept.append_pair(name, v);
            }
        }
        let mut kept = kept.finish();
        if kept.len() > KEPT_MAX {
            // Too long for a cookie: the page still says what happened, with its fields empty.
            kept = url::form_urlencoded::Serializer::new(String::new())
                .append_pair(FORM_KEY, &self.path)
                .finish();
        }
        let (name, value) = set_cookie(&self.settings, KEPT_COOKIE, &kept);
        let cookie = (name, format!("{value}; Max-Age={KEPT_SECS}"));
        (AppendHeaders([cookie]), to_sign_in(&self.path, true)).into_response()
    }
}

/// What a form posted after its session ended kept for this page (usually nothing), taken once: the
/// answer made with [`Kept::answer`] drops it.
pub struct Kept {
    /// The kept cookie was for this page.
    resumed: bool,
    fields: Map<String, Value>,
    settings: ConsoleSettings,
}

impl FromRequestParts<AppState> for Kept {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Infallible> {
        let mut fields = cookie(&parts.headers, KEPT_COOKIE)
            .map(|v| form_fields(v.as_bytes()))
            .unwrap_or_default();
        let resumed = fields.remove(FORM_KEY).as_ref().and_then(Value::as_str) == Some(parts.uri.path());
        if !resumed {
            fields.clear();
        }
        Ok(Self {
            resumed,
            fields,
            settings: settings_of(parts),
        })
    }
}

impl Kept {
    /// This page is the form of a post whose session had ended: nothing was done (say so).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// The kept fields, for a form that fills in the ones it names.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// `page` as the answer; what was kept for it, shown on it, is dropped.
    pub fn answer(self, page: impl IntoResponse) -> Response {
        let clear = self.resumed.then(|| set_cookie(&self.settings, KEPT_COOKIE, ""));
        (AppendHeaders(clear), page).into_response()
    }
}
