//! A console form posted after its session expired (`docs/CONSOLE.md`, "Sessions and forms"): nothing is
//! done; sign-in says the session expired; after it the form is back, in the org it was posted in, its
//! non-secret fields filled in and its secret ones empty; the secret is in no answer (body, `Location`,
//! `Set-Cookie`) and no line of the service's log. A post with a wrong or no CSRF token is still 403.

use serde_json::Value;

use crate::support::alone::alone;
use crate::support::app::{Db, TestApp, TestConfig, spawn_app};
use crate::support::console::{Browser, Page};
use crate::support::logs::Capture;

const PASSWORD: &str = "correct-horse-battery";
const SECRET: &str = "glsa_expiredSessionSecret_0123456789";
const KEPT_URL: &str = "https://kept.example.com";
const NOTICE: &str = "Your session had expired, so nothing was done.";

async fn app(db: Db) -> TestApp {
    let cfg = TestConfig::default().with("TOKENKEEPER_SESSION_TTL_SECS", "600");
    spawn_app(db, cfg).await.unwrap()
}

/// Signs `email` in and creates the org `Ops`, where the console then acts; its id.
async fn in_new_org(app: &TestApp, b: &mut Browser, email: &str) -> String {
    app.register(email, PASSWORD).await;
    b.sign_in(email, PASSWORD).await;
    let page = b.submit("/members", "/orgs", &[("name", "Ops")]).await;
    assert_eq!(page.location.as_deref(), Some("/members"));
    b.cookies["tk_org"].clone()
}

/// The page's org switcher has `org` selected.
fn acts_in(page: &Page, org: &str) -> bool {
    page.body.contains(&format!("<option value=\"{org}\" selected>"))
}

/// Everything the service answered: bodies, `Location`s, `Set-Cookie` lines.
#[derive(Default)]
struct Answers(Vec<String>);

impl Answers {
    fn add(&mut self, b: &Browser, page: Page) -> Page {
        self.0.push(page.body.clone());
        self.0.extend(page.location.clone());
        self.0.extend(b.set_cookie.iter().cloned());
        page
    }
}

/// The org's connections, through the API with a fresh session.
async fn connections(app: &TestApp, email: &str, org: &str) -> Vec<Value> {
    let token = app.login(email, PASSWORD).await;
    let r = app
        .client
        .get(app.at("/api/tokens"))
        .bearer_auth(&token)
        .header("X-Org-ID", org);
    let body: Value = r.send().await.unwrap().json().await.unwrap();
    body["connections"].as_array().unwrap().clone()
}

/// Signs in again from the sign-in page `at`, with `next` as that page's form carries it.
async fn sign_in_again(b: &mut Browser, seen: &mut Answers, at: &str, email: &str, next: &str) -> Page {
    let page = b.get(at).await;
    let page = seen.add(b, page);
    assert!(page.body.contains("Your session has expired"), "{}", page.body);
    assert!(
        page.body.contains(&format!("name=\"next\" value=\"{next}\"")),
        "{}",
        page.body
    );
    let fields = [("email", email), ("password", PASSWORD), ("next", next)];
    let page = b.submit(at, "/sign-in", &fields).await;
    seen.add(b, page)
}

/// The connect form: its URL and connection name come back after sign-in, its key does not, and nothing
/// is stored until it is entered again. Runs alone: it reads the service's log.
async fn a_connect_form_after_expiry_keeps_only_non_secret_fields(db: Db) {
    let name = "a_connect_form_after_expiry_keeps_only_non_secret_fields";
    if !alone(module_path!(), db, name).await {
        return;
    }
    let logs = Capture::install("trace");
    let app = app(db).await;
    let mut seen = Answers::default();
    let mut b = Browser::new(&app);
    let org = in_new_org(&app, &mut b, "ivy@example.com").await;
    let form = b.get("/connect/grafana").await;
    assert!(acts_in(&form, &org), "{}", form.body);
    let csrf = form.csrf();
    let fields = [
        ("api_key", SECRET),
        ("base_url", KEPT_URL),
        ("connection_name", "staging"),
    ];

    // Signed out (no session cookie): to sign in, nothing kept.
    let mut stranger = Browser::new(&app);
    let page = stranger
        .post("/connect/grafana", &[fields[0], fields[1], ("csrf", &csrf)])
        .await;
    let page = seen.add(&stranger, page);
    assert_eq!(page.location.as_deref(), Some("/sign-in?next=%2Fconnect%2Fgrafana"));
    assert!(!stranger.cookies.contains_key("tk_kept"));

    app.clock.advance_secs(601);
    // A wrong or no CSRF token is refused as before, and nothing is kept.
    let wrong = "0".repeat(64);
    for extra in [vec![], vec![("csrf", wrong.as_str())]] {
        let page = b.post("/connect/grafana", &[&fields[..], &extra[..]].concat()).await;
        let page = seen.add(&b, page);
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(!b.cookies.contains_key("tk_kept"));
    }

    let page = b
        .post("/connect/grafana", &[&fields[..], &[("csrf", &csrf)]].concat())
        .await;
    let page = seen.add(&b, page);
    let to = "/sign-in?next=%2Fconnect%2Fgrafana&expired=1";
    assert_eq!((page.status.as_u16(), page.location.as_deref()), (303, Some(to)));
    let kept = b.cookies.get("tk_kept").expect("the non-secret fields kept").clone();
    assert!(kept.contains("kept.example.com") && kept.contains("staging"), "{kept}");

    let back = sign_in_again(&mut b, &mut seen, to, "ivy@example.com", "/connect/grafana").await;
    assert_eq!(back.location.as_deref(), Some("/connect/grafana"));
    let form = b.get("/connect/grafana").await;
    let form = seen.add(&b, form);
    assert_eq!(form.status, 200);
    assert!(acts_in(&form, &org), "in the org it was posted in: {}", form.body);
    assert!(form.body.contains(NOTICE), "{}", form.body);
    assert!(form.body.contains(&format!("value=\"{KEPT_URL}\"")), "{}", form.body);
    assert!(form.body.contains("value=\"staging\""), "{}", form.body);
    let key_input = form
        .body
        .split("name=\"api_key\"")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap();
    assert!(!key_input.contains("value="), "the key input is empty: {key_input}");
    assert!(!b.cookies.contains_key("tk_kept"), "dropped once shown");
    let again = b.get("/connect/grafana").await;
    assert!(!again.body.contains(KEPT_URL) && !again.body.contains(NOTICE));
    assert!(
        connections(&app, "ivy@example.com", &org).await.is_empty(),
        "nothing stored"
    );

    // The key entered again: connected in Ops.
    let done = b.submit("/connect/grafana", "/connect/grafana", &fields).await;
    let done = seen.add(&b, done);
    assert_eq!(done.status, 200, "{}", done.body);
    let listed = connections(&app, "ivy@example.com", &org).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "staging");

    assert!(seen.0.len() > 10);
    for answer in &seen.0 {
        assert!(!answer.contains(SECRET), "the secret in an answer: {answer}");
    }
    let log = logs.text();
    assert!(log.contains("/connect/grafana"), "the log holds the requests: {log}");
    assert!(!log.contains(SECRET), "the secret in the log");
}

/// "Add a member": its e-mail and role come back after sign-in, in the same org; nobody is added until it
/// is posted again.
async fn an_add_member_form_after_expiry_keeps_email_and_role(db: Db) {
    let app = app(db).await;
    let mut seen = Answers::default();
    let mut b = Browser::new(&app);
    let org = in_new_org(&app, &mut b, "jo@example.com").await;
    app.user("kim@example.com").await;
    let csrf = b.get("/members").await.csrf();
    app.clock.advance_secs(601);

    let add = [("email", "kim@example.com"), ("role", "editor")];
    let refused = b.post("/members", &[add[0], add[1], ("csrf", &"0".repeat(64))]).await;
    assert_eq!(refused.status, 403);
    assert!(!b.cookies.contains_key("tk_kept"));
    let page = b.post("/members", &[add[0], add[1], ("csrf", &csrf)]).await;
    let page = seen.add(&b, page);
    let to = "/sign-in?next=%2Fmembers&expired=1";
    assert_eq!(page.location.as_deref(), Some(to));

    let back = sign_in_again(&mut b, &mut seen, to, "jo@example.com", "/members").await;
    assert_eq!(back.location.as_deref(), Some("/members"));
    let page = b.get("/members").await;
    assert!(acts_in(&page, &org) && page.body.contains(NOTICE), "{}", page.body);
    assert!(
        page.body.contains("name=\"email\" value=\"kim@example.com\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<option value=\"editor\" selected>"),
        "{}",
        page.body
    );
    let token = app.login("jo@example.com", PASSWORD).await;
    let members = format!("/api/orgs/{org}/members");
    let before = app.get_auth(&members, &token).await.text().await.unwrap();
    assert!(!before.contains("kim@example.com"), "nobody added: {before}");

    let done = b.submit("/members", "/members", &add).await;
    assert_eq!(done.location.as_deref(), Some("/members"));
    let after = app.get_auth(&members, &token).await.text().await.unwrap();
    assert!(after.contains("kim@example.com") && after.contains("editor"), "{after}");
}

crate::on_both_backends!(
    a_connect_form_after_expiry_keeps_only_non_secret_fields,
    an_add_member_form_after_expiry_keeps_email_and_role,
);
