//! Unit tests of the identity cache, on SQLite files (two stores on one file stand for two processes).

use super::*;
use crate::db::{NewSession, User};

async fn store_on(dir: &std::path::Path) -> SharedStore {
    crate::db::connect(&format!("sqlite://{}", dir.join("tk.db").display()))
        .await
        .unwrap()
}

async fn user_with_session(store: &SharedStore, id: &str, hash: &str) {
    let user = User {
        id: id.into(),
        email: format!("{id}@example.com"),
        name: None,
        password_hash: None,
        password_changed_at: None,
        password_generation: 0,
        created_at: 0,
        must_change_password: false,
    };
    store.create_user(&user).await.unwrap();
    let session = NewSession {
        token_hash: hash.into(),
        user_id: id.into(),
        created_at: 0,
        expires_at: 1_000,
        password_generation: 0,
    };
    assert!(store.create_session(&session).await.unwrap());
}

/// A cache over a new database holding users `u1` and `u2`, with sessions `h1` and `h2`.
async fn two_users() -> (tempfile::TempDir, SharedStore, Arc<IdentityCache>) {
    let dir = tempfile::tempdir().unwrap();
    let store = store_on(dir.path()).await;
    let cache = IdentityCache::connect(store.clone()).await.unwrap();
    user_with_session(&store, "u1", "h1").await;
    user_with_session(&store, "u2", "h2").await;
    (dir, store, cache)
}

#[tokio::test]
async fn a_session_is_served_from_memory_until_another_process_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (store_on(dir.path()).await, store_on(dir.path()).await);
    let cache = IdentityCache::connect(a.clone()).await.unwrap();
    let other = IdentityCache::connect(b.clone()).await.unwrap();
    user_with_session(&a, "u1", "h1").await;
    assert_eq!(cache.session_user("h1", 10).await.unwrap().as_deref(), Some("u1"));
    // Revoked behind the cache's back (no notice): still served from memory, which is what saves SQL.
    b.revoke_session("h1", 20).await.unwrap();
    assert_eq!(cache.session_user("h1", 30).await.unwrap().as_deref(), Some("u1"));
    // Past its expiry it is not served, cached or not.
    assert_eq!(cache.session_user("h1", 1_000).await.unwrap(), None);
    // The other process's notice (its counter bump) drops everything here.
    user_with_session(&a, "u2", "h2").await;
    assert_eq!(cache.session_user("h2", 10).await.unwrap().as_deref(), Some("u2"));
    b.revoke_session("h2", 20).await.unwrap();
    other.changed(Changed::Session("h2")).await;
    assert_eq!(cache.session_user("h2", 30).await.unwrap(), None);
}

#[tokio::test]
async fn own_changes_drop_at_once_and_keep_the_rest() {
    let (_dir, store, cache) = two_users().await;
    assert!(cache.session_user("h1", 10).await.unwrap().is_some());
    assert!(cache.session_user("h2", 10).await.unwrap().is_some());
    assert_eq!(cache.password_changed_at("nobody").await.unwrap(), None);
    assert_eq!(cache.len(), 3);
    store.revoke_session("h1", 20).await.unwrap();
    cache.changed(Changed::Session("h1")).await;
    assert_eq!(cache.session_user("h1", 30).await.unwrap(), None);
    // Only its own change was counted since: the other entries stay.
    assert_eq!(cache.len(), 2);
    cache.changed(Changed::User("u2")).await;
    assert_eq!(cache.len(), 1, "u2's session went, the unknown user's answer stayed");
}

#[tokio::test]
async fn announcements_drop_their_user_or_everything() {
    let (_dir, _store, cache) = two_users().await;
    cache.session_user("h1", 10).await.unwrap();
    cache.session_user("h2", 10).await.unwrap();
    cache.password_changed_at("u1").await.unwrap();
    cache.announced("u:u1");
    assert_eq!(cache.len(), 1);
    cache.announced(crate::db::CHANGED_ALL);
    assert!(cache.is_empty());
    assert_eq!(cache.announcements(), 2);
}

#[tokio::test]
async fn a_read_that_raced_a_change_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_on(dir.path()).await;
    let cache = IdentityCache::connect(store.clone()).await.unwrap();
    let ticket = cache.ticket();
    cache.changed(Changed::User("u1")).await; // committed while the reader was reading
    cache
        .roles
        .put(("o".into(), "u1".into()), "admin".into(), || cache.current(ticket));
    assert!(cache.is_empty());
    let ticket = cache.ticket();
    cache
        .roles
        .put(("o".into(), "u1".into()), "admin".into(), || cache.current(ticket));
    assert_eq!(cache.len(), 1);
}
