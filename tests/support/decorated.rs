//! Secret stores around the configured one, for failure tests: every call passes through, but for the
//! ones a test's [`Hooks`] take over (to count, to fail, or to let another writer in first).

use std::sync::{Arc, OnceLock};

use secrecy::SecretString;
use tokenkeeper::secrets::{SecretError, SecretStore, SecretVersion, StoreKind};

use super::app::WrapSecrets;

/// What a test changes in the calls to the store; each method gets the store it decorates, and passes
/// the call through unless the test overrides it.
#[async_trait::async_trait]
pub trait Hooks: Send + Sync + 'static {
    async fn read(
        &self,
        inner: &dyn SecretStore,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<SecretVersion>, SecretError> {
        inner.read(name, version).await
    }
    async fn current_version(&self, inner: &dyn SecretStore, name: &str) -> Result<u64, SecretError> {
        inner.current_version(name).await
    }
    async fn write(
        &self,
        inner: &dyn SecretStore,
        name: &str,
        value: &SecretString,
        cas: Option<u64>,
    ) -> Result<u64, SecretError> {
        inner.write(name, value, cas).await
    }
    async fn delete(&self, inner: &dyn SecretStore, name: &str) -> Result<(), SecretError> {
        inner.delete(name).await
    }
}

/// The decorated store: `hooks` around `inner`, which is set once (by [`Decorated::wrap`] when the
/// service is built, or at once by [`Decorated::around`]).
pub struct Decorated<H> {
    inner: OnceLock<Arc<dyn SecretStore>>,
    pub hooks: H,
}

impl<H: Hooks> Decorated<H> {
    /// Around the service's store: pass [`Decorated::wrap`] to `spawn_app_wrapping_secrets`.
    pub fn new(hooks: H) -> Arc<Self> {
        Arc::new(Self {
            inner: OnceLock::new(),
            hooks,
        })
    }

    /// Around a store that exists already (a library-built service's).
    pub fn around(inner: Arc<dyn SecretStore>, hooks: H) -> Arc<Self> {
        let d = Self::new(hooks);
        d.inner.set(inner).ok().expect("a new decorator");
        d
    }

    /// The decorator for `spawn_app_wrapping_secrets`: it keeps the store it is given.
    pub fn wrap(self: &Arc<Self>) -> WrapSecrets {
        let this = self.clone();
        Box::new(move |inner| {
            this.inner.set(inner).ok().expect("wrapped once");
            this as Arc<dyn SecretStore>
        })
    }

    /// The decorated store itself (no hooks).
    pub fn inner(&self) -> &dyn SecretStore {
        self.inner.get().expect("wrapped").as_ref()
    }
}

#[async_trait::async_trait]
impl<H: Hooks> SecretStore for Decorated<H> {
    fn kind(&self) -> StoreKind {
        self.inner().kind()
    }
    fn reference(&self, name: &str) -> String {
        self.inner().reference(name)
    }
    async fn read(&self, name: &str, version: Option<u64>) -> Result<Option<SecretVersion>, SecretError> {
        self.hooks.read(self.inner(), name, version).await
    }
    async fn current_version(&self, name: &str) -> Result<u64, SecretError> {
        self.hooks.current_version(self.inner(), name).await
    }
    async fn write(&self, name: &str, value: &SecretString, cas: Option<u64>) -> Result<u64, SecretError> {
        self.hooks.write(self.inner(), name, value, cas).await
    }
    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.hooks.delete(self.inner(), name).await
    }
    async fn check(&self) -> Result<(), SecretError> {
        self.inner().check().await
    }
}
