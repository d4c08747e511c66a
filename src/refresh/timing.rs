//! When to refresh: the margin before expiry, the planned next refresh, and backoff after failures.
//! Pure functions of the clock's "now" (epoch seconds), so that they are tested without waiting.

use rand::Rng as _;

/// Whether a credential should be refreshed at `now`, from its row's `expires_at` and `next_refresh_at`.
///
/// - `next_refresh_at` unset: never (a static credential, or one that needs re-authorization).
/// - `expires_at` unset: yes (no token minted yet, or its expiry is unknown).
/// - expired: yes (the engine still honours a failing provider's backoff).
/// - else: once within `margin` of expiry *and* the planned refresh time has come. A refresh plans
///   `next_refresh_at` with [`planned_refresh`], whose margin is capped by the token's lifetime: without
///   that second condition a token living less than the margin would be due again the moment it was
///   obtained, so every waiting reader would refresh once more. A stored credential plans
///   `expires_at - margin` and so is due within the margin, as before. While the background refresher
///   holds a claim on the row (`next_refresh_at` moved to the claim's lease) reads leave the refresh to
///   it, until the lease ends or the token expires.
pub fn is_expiring(margin: i64, expires_at: Option<i64>, next_refresh_at: Option<i64>, now: i64) -> bool {
    let Some(planned) = next_refresh_at else {
        return false;
    };
    match expires_at {
        None => true,
        Some(e) => e <= now || (e - margin <= now && planned <= now),
    }
}

/// The margin used for a token that lives `lifetime` seconds: the configured one, but at most half the
/// lifetime, so that a freshly obtained token is never due at once (e.g. 300 s margin, 200 s tokens:
/// refreshed 100 s before expiry).
pub fn effective_margin(margin: i64, lifetime: i64) -> i64 {
    margin.min(lifetime.max(0) / 2)
}

/// `next_refresh_at` after a refresh at `now` that obtained a token expiring at `expires_at`: the
/// effective margin before expiry, up to a fifth of it earlier (jitter spreads the refresher's work).
/// Later than `now` for any token living at least a second.
pub fn planned_refresh(margin: i64, expires_at: i64, now: i64) -> i64 {
    let m = effective_margin(margin, expires_at - now);
    expires_at - m - jitter(m / 5)
}

/// The backoff after `failures` consecutive failures, before jitter: 30 s, 60 s, 120 s ... doubling,
/// at most one hour. Fewer than one failure counts as one.
pub fn backoff_base_secs(failures: i32) -> i64 {
    (30i64 << (failures.clamp(1, 8) - 1)).min(3600)
}

/// Exponential backoff with jitter: [`backoff_base_secs`] +-20 %, so that credentials failing together
/// (a provider outage) are not retried together.
pub fn backoff_secs(failures: i32) -> i64 {
    let base = backoff_base_secs(failures);
    base - base / 5 + jitter(2 * base / 5)
}

/// Uniform in `0..=max` (0 when `max <= 0`).
pub fn jitter(max: i64) -> i64 {
    if max <= 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let bases: Vec<i64> = (1..=10).map(backoff_base_secs).collect();
        assert_eq!(bases, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        // Nonsense counts are clamped, never a shift overflow.
        assert_eq!(backoff_base_secs(0), 30);
        assert_eq!(backoff_base_secs(-5), 30);
        assert_eq!(backoff_base_secs(i32::MAX), 3600);
    }

    #[test]
    fn backoff_jitter_stays_within_twenty_percent_and_spreads() {
        for failures in [1, 2, 5, 8, 40] {
            let base = backoff_base_secs(failures);
            let (lo, hi) = (base - base / 5, base + base / 5);
            let samples: Vec<i64> = (0..2000).map(|_| backoff_secs(failures)).collect();
            assert!(
                samples.iter().all(|s| (lo..=hi).contains(s)),
                "{failures}: outside {lo}..={hi}"
            );
            // Spread over the range, not stuck at one value (2000 samples: all below or all above the
            // base has probability ~2^-2000).
            assert!(samples.iter().any(|s| *s < base) && samples.iter().any(|s| *s > base));
        }
        assert_eq!(jitter(0), 0);
        assert_eq!(jitter(-3), 0);
        assert!((0..1000).all(|_| (0..=7).contains(&jitter(7))));
    }

    #[test]
    fn margin_is_capped_by_half_the_lifetime() {
        assert_eq!(effective_margin(300, 3600), 300);
        assert_eq!(effective_margin(300, 600), 300);
        assert_eq!(effective_margin(300, 400), 200);
        assert_eq!(effective_margin(300, 200), 100);
        assert_eq!(effective_margin(300, 1), 0);
        assert_eq!(effective_margin(300, -10), 0);
    }

    #[test]
    fn a_fresh_token_is_never_due_at_once() {
        let now = 1_000_000;
        for lifetime in [1, 2, 10, 59, 200, 299, 300, 301, 599, 600, 3600] {
            for _ in 0..200 {
                let e = now + lifetime;
                let planned = planned_refresh(300, e, now);
                assert!(planned > now, "lifetime {lifetime}: planned {planned} <= now");
                assert!(!is_expiring(300, Some(e), Some(planned), now), "lifetime {lifetime}");
                // Long-lived tokens keep the configured margin (up to a fifth early).
                if lifetime >= 600 {
                    assert!((e - 360..=e - 300).contains(&planned), "lifetime {lifetime}: {planned}");
                }
            }
        }
    }

    #[test]
    fn due_within_the_margin_once_planned_or_expired() {
        let (m, e) = (300, 10_000);
        // Stored credential: planned at expiry - margin.
        assert!(!is_expiring(m, Some(e), Some(e - m), e - m - 1));
        assert!(is_expiring(m, Some(e), Some(e - m), e - m));
        // Short-lived token refreshed at 9_800 (200 s): planned at 9_900; not due before.
        assert!(!is_expiring(m, Some(e), Some(9_900), 9_850));
        assert!(is_expiring(m, Some(e), Some(9_900), 9_900));
        // Planned later (a backoff or a refresher's lease): not due before it, unless expired.
        assert!(!is_expiring(m, Some(e), Some(e + 60), e - 1));
        assert!(is_expiring(m, Some(e), Some(e + 60), e));
        // Nothing minted yet; static credentials.
        assert!(is_expiring(m, None, Some(0), 0));
        assert!(!is_expiring(m, None, None, 0));
        assert!(!is_expiring(m, Some(0), None, 10));
    }
}
