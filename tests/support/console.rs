//! A cookie-keeping client of the web console, for HTTP-level tests: follows no redirect (tests look at
//! them), keeps the cookies the console sets, reads each page's CSRF token.

use std::collections::BTreeMap;

use reqwest::{Client, StatusCode};

use super::app::TestApp;

pub struct Browser {
    base: String,
    client: Client,
    pub cookies: BTreeMap<String, String>,
    /// Every `Set-Cookie` line of the last answer, verbatim (for its attributes).
    pub set_cookie: Vec<String>,
}

/// An answer: status, `Location`, body.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.url.clone(),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            set_cookie: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, r: reqwest::Response) -> Page {
        self.set_cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for line in &self.set_cookie {
            let (k, v) = line.split(';').next().unwrap().split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status: r.status(),
            location: r.headers().get("location").map(|v| v.to_str().unwrap().to_string()),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        let r = r.send().await.unwrap();
        self.finish(r).await
    }

    /// Posts `fields` as a urlencoded form (add the `csrf` field yourself).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(fields);
        let r = r.send().await.unwrap();
        self.finish(r).await
    }

    /// Posts a form of the page at `form_page` with that page's CSRF token added.
    pub async fn submit(&mut self, form_page: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut all = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post(path, &all).await
    }

    /// Signs in through the sign-in form; panics unless it leads to `/`.
    pub async fn sign_in(&mut self, email: &str, password: &str) {
        let page = self
            .submit(
                "/sign-in",
                "/sign-in",
                &[("email", email), ("password", password), ("next", "/")],
            )
            .await;
        assert_eq!(page.status, 303, "sign in {email}: {}", page.body);
        assert_eq!(page.location.as_deref(), Some("/"));
    }
}
