//! Where sign-in sends a caller back to: a path of this console only, and for a form's POST-only action the
//! page that holds the form.

use axum::response::{IntoResponse, Redirect, Response};

/// A path of this console to go back to after signing in; anything else (another host, `//evil`) is `/`.
pub(super) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

/// To the sign-in page, which says whether the session `expired`, then back to the page of `path`.
pub(super) fn to_sign_in(path: &str, expired: bool) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(page_of(path).as_bytes()).collect();
    let to = format!("/sign-in?next={next}{}", if expired { "&expired=1" } else { "" });
    Redirect::to(&to).into_response()
}

/// The page a request's path is shown on: a form's action that answers only `POST` (a role change, Check now,
/// the OAuth button) goes back to the page that holds the form, since a `GET` of it after signing in would
/// be a 405.
fn page_of(path: &str) -> &str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["check", ..] | ["org"] | ["sign-out"] => "/",
        ["orgs"] | ["members", _, ..] => "/members",
        ["connect", _, "authorize"] => path.trim_end_matches("/authorize"),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::page_of;

    #[test]
    fn post_only_actions_go_back_to_their_forms_page() {
        for (path, page) in [
            ("/members/u1/role", "/members"),
            ("/members/u1/remove", "/members"),
            ("/orgs", "/members"),
            ("/check/grafana", "/"),
            ("/org", "/"),
            ("/connect/gcp/authorize", "/connect/gcp"),
            ("/connect/grafana", "/connect/grafana"),
            ("/disconnect/grafana", "/disconnect/grafana"),
            ("/members", "/members"),
            ("/audit", "/audit"),
            ("/", "/"),
        ] {
            assert_eq!(page_of(path), page, "{path}");
        }
    }
}
