//! The frame of every console page: head, navigation (links a caller's role cannot use are left out),
//! the org switcher, and the error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::{CSRF_FIELD, Signed};
use crate::orgs::Permission;

/// A whole page. `who` is `None` on the sign-in page.
pub fn page(title: &str, who: Option<&Signed>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tokenkeeper" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/" { "Tokenkeeper" }
                    @if let Some(who) = who { (nav(who)) }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn nav(who: &Signed) -> Markup {
    let admin = who.acting.require(Permission::ManageMembers).is_ok();
    html! {
        nav aria-label="Main" {
            a href="/" { "Connections" }
            @if admin { a href="/members" { "Members" } }
            a href="/audit" { "Audit trail" }
            a href="/password" { "Password" }
            form.inline method="post" action="/sign-out" {
                (csrf(who))
                button type="submit" { "Sign out" }
            }
        }
        @if who.orgs.len() > 1 {
            form.org method="post" action="/org" {
                (csrf(who))
                label for="org" { "Organization" }
                select #org name="org" {
                    @for org in &who.orgs {
                        option value=(org.id) selected[org.id == who.acting.org.as_str()] {
                            (org.name) " (" (org.role.as_str()) ")"
                        }
                    }
                }
                button type="submit" { "Switch" }
            }
        }
    }
}

/// The hidden CSRF field every form of a signed-in page carries.
pub fn csrf(who: &Signed) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(who.csrf); }
}

/// A message box: `role="alert"` for errors so screen readers announce it.
pub fn notice(error: bool, text: &str) -> Markup {
    html! {
        @if error { p.error role="alert" { (text) } } @else { p.ok role="status" { (text) } }
    }
}

/// An error as a page with its status code.
pub fn error_page(status: StatusCode, message: &str, who: Option<&Signed>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        (notice(true, message))
        p { a href="/" { "Back to the connections" } }
    };
    (status, page(title, who, body)).into_response()
}

/// An RFC 3339 time as a table shows it (`2026-12-03 15:22 UTC`, the exact one in `datetime`), or a dash.
pub fn stamp(text: Option<&str>) -> Markup {
    match text {
        Some(t) if t.len() >= 16 && t.ends_with('Z') => {
            html! { time datetime=(t) { (t[..16].replacen('T', " ", 1)) " UTC" } }
        }
        other => html! { (when(other)) },
    }
}

/// The RFC 3339 time of epoch milliseconds, or a dash.
pub fn when(text: Option<&str>) -> &str {
    text.unwrap_or("—")
}
