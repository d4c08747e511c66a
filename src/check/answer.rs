//! What a check's answer means: the catalog's rejected statuses, its accepted ones besides 2xx, and the
//! provider's own "invalid" in a JSON body. Anything else (5xx, 429, an unexpected status) says nothing
//! about the credential: unreachable.

use serde_json::Value;

use super::CheckOutcome;
use crate::providers::CheckSpec;

/// Reads the answer `status`/`body` of `check`'s request.
pub fn read_answer(check: &CheckSpec, status: u16, body: &[u8]) -> CheckOutcome {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if check.rejected_statuses.contains(&status) {
        let code = json.as_ref().and_then(|j| {
            check
                .rejected_when
                .iter()
                .find_map(|rule| rule.detail.and_then(|p| code_at(j, p)))
        });
        return CheckOutcome::rejected(code.unwrap_or_else(|| format!("HTTP {status}")));
    }
    if !(200..300).contains(&status) && !check.accepted_statuses.contains(&status) {
        return CheckOutcome::unreachable(format!("HTTP {status}"));
    }
    if let Some(j) = &json {
        for rule in check.rejected_when {
            if j.pointer(rule.pointer) == Some(&Value::Bool(rule.equals)) {
                let code = rule.detail.and_then(|p| code_at(j, p));
                return CheckOutcome::rejected(code.unwrap_or_else(|| format!("{} is {}", rule.pointer, rule.equals)));
            }
        }
    }
    CheckOutcome::Accepted {
        detail: format!("HTTP {status}"),
    }
}

/// A provider's error code at `pointer`, kept only when it looks like one (a short word of letters,
/// digits, `_`, `-`, `.`), so that no free text of an answer is repeated.
fn code_at(json: &Value, pointer: &str) -> Option<String> {
    let code = json.pointer(pointer)?.as_str()?;
    let plain =
        !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    plain.then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::find;

    fn outcome(provider: &str, status: u16, body: &str) -> CheckOutcome {
        read_answer(&find(provider).unwrap().check, status, body.as_bytes())
    }

    #[test]
    fn slack_ok_false_is_a_rejection_with_its_code() {
        assert_eq!(
            outcome("slack", 200, r#"{"ok":false,"error":"invalid_auth"}"#),
            CheckOutcome::rejected("invalid_auth")
        );
        assert!(matches!(
            outcome("slack", 200, r#"{"ok":true}"#),
            CheckOutcome::Accepted { .. }
        ));
        // Free text is not repeated.
        assert_eq!(
            outcome("slack", 200, r#"{"ok":false,"error":"a long sentence with spaces"}"#),
            CheckOutcome::rejected("/ok is false")
        );
    }

    #[test]
    fn datadog_valid_false_and_403_are_rejections() {
        assert_eq!(
            outcome("datadog", 200, r#"{"valid":false}"#),
            CheckOutcome::rejected("/valid is false")
        );
        assert_eq!(
            outcome("datadog", 403, r#"{"errors":["Forbidden"]}"#),
            CheckOutcome::rejected("HTTP 403")
        );
        assert!(matches!(
            outcome("datadog", 200, r#"{"valid":true}"#),
            CheckOutcome::Accepted { .. }
        ));
    }

    #[test]
    fn outages_say_nothing_about_the_credential() {
        for status in [500, 502, 429, 302, 404] {
            assert_eq!(
                outcome("grafana", status, ""),
                CheckOutcome::unreachable(format!("HTTP {status}"))
            );
        }
        assert!(matches!(outcome("tailscale", 403, ""), CheckOutcome::Accepted { .. }));
        assert_eq!(
            outcome("gcp", 400, r#"{"error":"invalid_token"}"#),
            CheckOutcome::rejected("HTTP 400")
        );
    }
}
