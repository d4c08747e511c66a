//! Time as a parameter: production uses [`SystemClock`], tests drive a [`ManualClock`]
//! so that expiry, rate-limit windows and backoff are tested without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;

    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms())
    }
}

/// An instant, in milliseconds since the Unix epoch: one unit for every time a connection row holds,
/// whatever the resolution of the column it is kept in (the database layer converts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded down.
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// RFC 3339 text, e.g. `2026-11-29T12:00:00.000Z`.
    pub fn rfc3339(self) -> String {
        rfc3339(self.0)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// A duration in whole milliseconds, as times are counted here (saturating: no configured duration comes
/// near 292 million years).
pub fn millis_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A duration in whole seconds (saturating, like [`millis_i64`]).
pub fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Whole seconds of a number given in JSON (a time or a lifetime), the fraction dropped; `None` when it
/// is not finite or beyond 10^15 s either way, so that no conversion saturates silently.
#[expect(clippy::cast_possible_truncation, reason = "the range is checked first")]
pub fn whole_secs(f: f64) -> Option<i64> {
    (f.is_finite() && f.abs() < 1e15).then(|| f.trunc() as i64)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("system clock before 1970");
        millis_i64(d)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start_ms)))
    }

    /// Starts at the real current time, so that tokens minted by real tools are judged sensibly.
    pub fn starting_now() -> Arc<Self> {
        Self::new(SystemClock.now_ms())
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 UTC text for epoch milliseconds, e.g. `2026-11-29T12:00:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_953_600_000), "2026-11-29T12:00:00.000Z");
    }

    #[test]
    fn timestamps_convert_between_units() {
        let t = Timestamp::from_secs(1_700_000_000);
        assert_eq!((t.as_millis(), t.as_secs()), (1_700_000_000_000, 1_700_000_000));
        assert_eq!(Timestamp::from_millis(1_999).as_secs(), 1);
        assert_eq!(Timestamp::from_millis(-1).as_secs(), -1, "rounded down");
        assert_eq!(Timestamp::from_secs(0).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(ManualClock::new(5_500).now(), Timestamp::from_millis(5_500));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_secs(), 1);
        c.advance_secs(5);
        assert_eq!(c.now_ms(), 6_000);
    }
}
