//! The web console in a real browser (`docs/CONSOLE.md`): headless Chromium through the system chromedriver.
//! Scenarios: sign in with the keyboard, connect a key provider, see its status change after a forced
//! failure, disconnect; change the password and be signed out in another browser (its connect form, sent
//! after that, back after signing in again with the URL kept and the key empty); manage a member; every
//! page fits a 360 px wide screen. `screenshots` (ignored) writes a PNG of each page to
//! `TOKENKEEPER_SCREENSHOTS` (e.g. `docs/console`). Checks and connect flows: `connect.rs`.

#[path = "../support/mod.rs"]
mod support;

mod connect;

use fantoccini::{Client, Locator};

use support::app::{Db, TestApp, TestConfig, sql};
use support::chromium::Chromedriver;

const PASSWORD: &str = "correct-horse-battery";
const SECRET: &str = "glsa_browserExpirySecret_0123456789";
const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";

async fn text(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

async fn path(b: &Client) -> String {
    let url = b.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// An input's current value.
async fn value(b: &Client, css: &str) -> String {
    let input = b.find(Locator::Css(css)).await.unwrap();
    input.prop("value").await.unwrap().unwrap_or_default()
}

async fn fill(b: &Client, css: &str, value: &str) {
    b.find(Locator::Css(css)).await.unwrap().send_keys(value).await.unwrap();
}

/// Clicks a link or a submit button and waits for the next page (a click does not wait for it).
async fn click(b: &Client, css: &str) {
    let element = b.find(Locator::Css(css)).await.unwrap();
    loads(b, element.click()).await;
}

/// Runs `action`, then waits (bounded polling) until the page it was on is gone: the old document's root
/// element goes stale once the next page replaced it.
async fn loads<F: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>>(b: &Client, action: F) {
    let old = b.find(Locator::Css("html")).await.unwrap();
    action.await.unwrap();
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no new page within 5 s after {}", path(b).await);
}

/// Signs in with the keyboard only: the e-mail field has the focus, Tab to the password, Enter submits.
async fn sign_in(app: &TestApp, b: &Client, email: &str, password: &str) {
    sign_in_at(&app.url, b, email, password).await;
}

/// [`sign_in`] with the console reached at `base`.
async fn sign_in_at(base: &str, b: &Client, email: &str, password: &str) {
    b.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(b).await, "/sign-in?next=%2F");
    let focused = b.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("email"));
    focused.send_keys(&format!("{email}{TAB}")).await.unwrap();
    b.active_element()
        .await
        .unwrap()
        .send_keys(&format!("{password}{ENTER}"))
        .await
        .unwrap();
    assert_eq!(path(b).await, "/");
}

/// The page is no wider than the window (nothing cut off at 360 px).
async fn fits(b: &Client) {
    let overflow = b
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "{} overflows by {overflow} px",
        path(b).await
    );
}

async fn connect_see_status_and_disconnect(db: Db) {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = support::app::spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("ada@example.com", PASSWORD).await;
    let b = driver.browser(360, 800).await;
    sign_in(&app, &b, "ada@example.com", PASSWORD).await;
    assert!(text(&b, "main").await.contains("No provider is connected"));
    fits(&b).await;

    click(&b, "a[href='/connect/grafana']").await;
    fits(&b).await;
    fill(&b, "#f-api_key", "glsa_browserSecret_0123456789").await;
    fill(&b, "#f-base_url", "ftp://not-https").await;
    click(&b, "form.stack button[type=submit]").await;
    assert!(text(&b, "[role=alert]").await.contains("base_url"));
    // The secret field is empty again; the other one kept what was typed.
    let key = b.find(Locator::Css("#f-api_key")).await.unwrap();
    assert_eq!(key.prop("value").await.unwrap().as_deref(), Some(""));
    let base = b.find(Locator::Css("#f-base_url")).await.unwrap();
    base.clear().await.unwrap();
    base.send_keys("https://g.example.com").await.unwrap();
    fill(&b, "#f-api_key", "glsa_browserSecret_0123456789").await;
    click(&b, "form.stack button[type=submit]").await;
    assert!(text(&b, "[role=status]").await.contains("Grafana is connected"));

    b.goto(&app.at("/")).await.unwrap();
    // The test app stores without a check (no provider to reach), so the key is listed as unchecked.
    assert_eq!(text(&b, "td .status").await, "unchecked");
    assert!(!b.source().await.unwrap().contains("glsa_browserSecret"));
    fits(&b).await;

    // A forced failure: the provider refused the credential (as a refresh would record it).
    sql(
        &app,
        "UPDATE connections SET status = 'needs_reauth', status_reason = 'invalid_grant'",
    )
    .await;
    b.refresh().await.unwrap();
    assert_eq!(text(&b, "td .status").await, "needs reauth");
    assert!(text(&b, "tbody").await.contains("invalid_grant"));

    click(&b, "a[href^='/disconnect/grafana']").await;
    click(&b, "button.danger").await;
    assert_eq!(path(&b).await, "/");
    assert!(text(&b, "main").await.contains("No provider is connected"));
    b.close().await.unwrap();
}

async fn a_password_change_signs_out_the_other_browser(db: Db) {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = support::app::spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("bea@example.com", PASSWORD).await;
    let (here, there) = (driver.browser(1280, 900).await, driver.browser(1280, 900).await);
    sign_in(&app, &here, "bea@example.com", PASSWORD).await;
    sign_in(&app, &there, "bea@example.com", PASSWORD).await;
    // The other browser fills in a connect form; its session ends before the form is sent.
    there.goto(&app.at("/connect/grafana")).await.unwrap();
    fill(&there, "#f-base_url", "https://kept.example.com").await;
    fill(&there, "#f-api_key", SECRET).await;

    click(&here, "a[href='/password']").await;
    fill(&here, "#current", PASSWORD).await;
    fill(&here, "#new", "a-brand-new-staple").await;
    fill(&here, "#confirm", "a-brand-new-staple").await;
    click(&here, "form.stack button[type=submit]").await;
    assert_eq!(text(&here, "[role=status]").await, "Password changed successfully");

    click(&there, "form.stack button[type=submit]").await;
    assert_eq!(path(&there).await, "/sign-in?next=%2Fconnect%2Fgrafana&expired=1");
    assert!(text(&there, "[role=alert]").await.contains("Your session has expired"));
    // Signed in again: the form is back, its URL kept, its key empty, nothing stored.
    fill(&there, "#email", "bea@example.com").await;
    fill(&there, "#password", "a-brand-new-staple").await;
    click(&there, "form.stack button[type=submit]").await;
    assert_eq!(path(&there).await, "/connect/grafana");
    assert!(text(&there, "[role=status]").await.contains("nothing was done"));
    assert_eq!(value(&there, "#f-base_url").await, "https://kept.example.com");
    assert_eq!(value(&there, "#f-api_key").await, "");
    assert!(!there.source().await.unwrap().contains(SECRET));
    there.goto(&app.at("/")).await.unwrap();
    assert!(text(&there, "main").await.contains("No provider is connected"));
    here.goto(&app.at("/audit")).await.unwrap();
    assert!(text(&here, "tbody").await.contains("change_password"));
    here.close().await.unwrap();
    there.close().await.unwrap();
}

/// dee's row of the members table.
const DEE: &str = "//tr[td[text()='dee@example.com']]";

async fn an_admin_manages_a_member(db: Db) {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = support::app::spawn_app(db, TestConfig::default()).await.unwrap();
    app.register("cy@example.com", PASSWORD).await;
    app.register("dee@example.com", PASSWORD).await;
    let b = driver.browser(1280, 900).await;
    sign_in(&app, &b, "cy@example.com", PASSWORD).await;
    click(&b, "a[href='/members']").await;
    fill(&b, "#org-name", "Platform team").await;
    click(&b, "form[action='/orgs'] button").await;
    assert!(text(&b, "#org").await.contains("Platform team (admin)"));

    fill(&b, "#member-email", "dee@example.com").await;
    b.find(Locator::Css("#member-role"))
        .await
        .unwrap()
        .select_by_value("editor")
        .await
        .unwrap();
    click(&b, "form[action='/members'] button").await;
    let row = b.find(Locator::XPath(DEE)).await.unwrap();
    row.find(Locator::Css("select"))
        .await
        .unwrap()
        .select_by_value("viewer")
        .await
        .unwrap();
    let change = row.find(Locator::Css("form[action$='/role'] button")).await.unwrap();
    loads(&b, change.click()).await;
    let row = b.find(Locator::XPath(DEE)).await.unwrap();
    let role = row
        .find(Locator::Css("select"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(role.as_deref(), Some("viewer"));
    let remove = row.find(Locator::Css("button.danger")).await.unwrap();
    loads(&b, remove.click()).await;
    assert!(!text(&b, "main").await.contains("dee@example.com"));
    b.close().await.unwrap();
}

/// A PNG of each page at desktop width and two at 360 px, into `TOKENKEEPER_SCREENSHOTS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes files: TOKENKEEPER_SCREENSHOTS=docs/console cargo test --test browser -- --ignored"]
async fn screenshots() {
    let dir = std::path::PathBuf::from(std::env::var("TOKENKEEPER_SCREENSHOTS").expect("TOKENKEEPER_SCREENSHOTS"));
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    // A gcp client id (never used here) so that the connect page shows its "Connect with" button.
    let cfg = TestConfig::default().with("TOKENKEEPER_GCP_CLIENT_ID", "screenshot-client");
    let app = support::app::spawn_app(Db::Sqlite, cfg).await.unwrap();
    let (_, token) = app.user("ada@example.com").await;
    let grafana = serde_json::json!({"api_key": "glsa_exampleExampleExample_0123abcd", "base_url": "https://example.grafana.net"});
    assert_eq!(app.put_auth("/api/tokens/grafana", &token, grafana).await.status(), 200);
    let datadog = serde_json::json!({"api_key": "0123456789abcdef0123456789abcdef", "app_key": "0123456789abcdef0123456789abcdef01234567"});
    assert_eq!(app.put_auth("/api/tokens/datadog", &token, datadog).await.status(), 200);
    sql(
        &app,
        "UPDATE connections SET status = 'degraded', status_reason = 'check_unreachable: timed out', \
         last_check_error = 'timed out', last_checked_at = updated_at WHERE provider = 'datadog'",
    )
    .await;
    let shots = [
        ("connections", "/"),
        ("connect", "/connect/grafana"),
        ("connect-oauth", "/connect/gcp"),
        ("disconnect", "/disconnect/grafana"),
        ("password", "/password"),
        ("members", "/members"),
        ("audit", "/audit"),
    ];
    for (width, suffix) in [(1280, ""), (360, "-360")] {
        let b = driver.browser(width, 900).await;
        b.goto(&app.at("/sign-in")).await.unwrap();
        std::fs::write(dir.join(format!("sign-in{suffix}.png")), b.screenshot().await.unwrap()).unwrap();
        sign_in(&app, &b, "ada@example.com", "correct-horse-battery").await;
        for (name, page) in shots {
            if suffix.is_empty() || name == "connections" {
                b.goto(&app.at(page)).await.unwrap();
                std::fs::write(dir.join(format!("{name}{suffix}.png")), b.screenshot().await.unwrap()).unwrap();
            }
        }
        b.close().await.unwrap();
    }
}

crate::on_both_backends!(
    connect_see_status_and_disconnect,
    a_password_change_signs_out_the_other_browser,
    an_admin_manages_a_member,
);
