//! A browser for the authorization-code flow against django-oauth-toolkit: it logs in to Django (a session
//! cookie), opens the authorization URL, reads the consent page's form and answers it (allow or cancel),
//! and hands back where Django sends it next: the `redirect_uri` with `code` (or `error`) and `state`.
//! Redirects are never followed by themselves: each hop is the test's to see.
#![allow(dead_code)]

use std::collections::BTreeMap;

use super::oauth_server::{OAuthClient, OAuthServer};

pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// Logs in to the authorization server as `client`'s user.
    pub async fn login(&mut self, server: &OAuthServer, client: &OAuthClient) {
        let req = self
            .http
            .post(format!("{}/test/login", server.base_url))
            .form(&[("username", &client.username), ("password", &client.password)]);
        let resp = self.send(req).await;
        assert_eq!(resp.status(), 200, "login to the authorization server");
    }

    /// Opens `authorization_url` (the consent page) and answers it; the `Location` Django answers with.
    pub async fn consent(&mut self, authorization_url: &str, allow: bool) -> String {
        let page = self.send(self.http.get(authorization_url)).await;
        let hop = page
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        assert_eq!(
            page.status(),
            200,
            "the consent page of {authorization_url} (sent to {hop:?})"
        );
        let html = page.text().await.unwrap();
        let mut form = hidden_inputs(&html);
        assert!(
            form.iter().any(|(k, _)| k == "code_challenge"),
            "the consent form carries the PKCE challenge: {html}"
        );
        if allow {
            form.push(("allow".into(), "Authorize".into()));
        }
        let resp = self.send(self.http.post(authorization_url).form(&form)).await;
        assert_eq!(resp.status(), 302, "the consent answer redirects");
        location(&resp)
    }

    /// GET `url` without following redirects; cookies of this browser sent along.
    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        self.send(self.http.get(url)).await
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("Cookie", cookie)
        };
        let resp = req.send().await.expect("browser request");
        for v in resp.headers().get_all("set-cookie") {
            if let Some((k, rest)) = v.to_str().unwrap_or_default().split_once('=') {
                let value = rest.split(';').next().unwrap_or_default();
                self.cookies.insert(k.trim().to_string(), value.to_string());
            }
        }
        resp
    }
}

/// The `Location` header of a redirect.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("a Location header on {}", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// The query parameter `name` of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).unwrap();
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `(name, value)` of every `<input type="hidden" ...>` of a Django form, values unescaped.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            if attr(tag, "type")? != "hidden" {
                return None;
            }
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
