//! Headless Chromium through the system `chromedriver` (Debian's `chromium-driver`), driven over WebDriver
//! with fantoccini. Nothing is downloaded: without the binaries the test is skipped (or fails under
//! `TOKENKEEPER_REQUIRE_ALL=1`, see `skip`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use super::skip::{Dependency, skip};

/// A running chromedriver, killed when dropped.
pub struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

impl Chromedriver {
    /// `None` (announced) when chromium or chromedriver is not installed.
    pub async fn start() -> Option<Self> {
        let (Some(driver), Some(_)) = (on_path("chromedriver"), on_path("chromium")) else {
            return skip(
                Dependency::Chromium,
                "apt-get install chromium chromium-driver (scripts/test.sh does)",
            );
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let me = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Bounded wait for it to listen.
        let status = format!("{}/status", me.url);
        for _ in 0..200 {
            if reqwest::get(&status).await.is_ok_and(|r| r.status().is_success()) {
                return Some(me);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not answer on {status}");
    }

    /// A new browser (its own profile: its own cookies), headless, a viewport of `width` × `height` CSS
    /// pixels (a phone's emulated below 500 px, the narrowest window Chromium opens).
    pub async fn browser(&self, width: u32, height: u32) -> Client {
        let args = [
            "--headless=new".to_string(),
            // Root in CI and containers: Chromium's sandbox needs user namespaces it may not have.
            "--no-sandbox".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--hide-scrollbars".to_string(),
            format!("--window-size={width},{height}"),
        ];
        let mut caps = serde_json::Map::new();
        let mut options = json!({ "args": args });
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}});
        }
        caps.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session")
    }
}
