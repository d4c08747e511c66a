//! A login that checked the old password while a password change committed must not leave a working
//! session. The logins run through the library (a `PasswordService` on a store whose session insert
//! waits at a gate), so the test knows each of them passed its bcrypt check before the change, and
//! lets them write their sessions only after the change committed.

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;
use tokenkeeper::passwords::{Caller, PasswordError};

use crate::support::app::{Db, TestConfig, spawn_app, sql};
use crate::support::store_faults::{FaultyStore, Gate};
use crate::support::wait;

const LOGINS: usize = 12;

async fn logins_racing_a_password_change_leave_no_session(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let email = "race@example.com";
    let (_, changer) = app.user(email).await;
    let gate = Arc::new(Gate::default());
    let mut store = FaultyStore::new(app.services.store.clone());
    store.session_gate = Some(gate.clone());
    let (passwords, _) = app.library_passwords(Arc::new(store)).await;

    // Every login checks the old password, then waits at the gate before its session is written.
    let logins: Vec<_> = (0..LOGINS)
        .map(|i| {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                let addr = format!("192.0.2.{i}");
                let pw = SecretString::from("correct-horse-battery".to_string());
                passwords.login(email, pw, &Caller { client_addr: &addr }).await
            })
        })
        .collect();
    wait::until("every login passed its password check", || async {
        gate.arrived() == LOGINS
    })
    .await;

    let body = json!({"currentPassword": "correct-horse-battery", "newPassword": "a-brand-new-password"});
    let r = app.post_auth("/api/auth/change-password", &changer, body).await;
    assert_eq!(r.status(), 200);
    gate.open();

    let (mut issued, mut working) = (0, 0);
    for login in logins {
        match wait::bounded("a held login ends", login).await.unwrap() {
            Ok(done) => {
                issued += 1;
                let token = secrecy::ExposeSecret::expose_secret(&done.session.token).to_string();
                if app.get_auth("/api/auth/me", &token).await.status() == 200 {
                    working += 1;
                }
            }
            Err(PasswordError::InvalidCredentials) => {}
            Err(e) => panic!("a held login failed otherwise: {e}"),
        }
    }
    assert_eq!(
        working, 0,
        "{working} of {LOGINS} sessions from the old password work after the change"
    );
    assert_eq!(
        issued, 0,
        "{issued} of {LOGINS} logins that raced the change answered with a session"
    );
    // The session that made the change stays, and the new password logs in.
    assert_eq!(app.get_auth("/api/auth/me", &changer).await.status(), 200);
    let fresh = app.login(email, "a-brand-new-password").await;
    assert_eq!(app.get_auth("/api/auth/me", &fresh).await.status(), 200);
}

/// The lookup compares generations itself: a session written under an older generation is refused though
/// nothing revoked it (on PostgreSQL a login's insert can check the generation before a change commits and
/// commit after the change revoked the sessions it could see).
async fn a_session_of_an_older_generation_is_refused(db: Db) {
    let app = spawn_app(db, TestConfig::default()).await.unwrap();
    let (uid, token) = app.user("generation@example.com").await;
    assert_eq!(app.get_auth("/api/auth/me", &token).await.status(), 200);
    let bump = format!("UPDATE users SET password_generation = password_generation + 1 WHERE id = '{uid}'");
    sql(&app, &bump).await;
    // Written by hand: the identity cache is told, as the password workflows do, so the lookup below is
    // the database's.
    let changed = tokenkeeper::db::identity_cache::Changed::User(&uid);
    app.services.identity.changed(changed).await;
    assert_eq!(app.get_auth("/api/auth/me", &token).await.status(), 401);
}

crate::on_both_backends!(
    logins_racing_a_password_change_leave_no_session,
    a_session_of_an_older_generation_is_refused
);
