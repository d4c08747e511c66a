//! The 403 every authenticated operation can answer while the caller's own session must change its
//! password first (`must_change_password`, `docs/IDENTITY.md`): added to each operation from here, since
//! the refusal comes from the one authentication step, not from the handlers' annotations.

use utoipa::Modify;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

/// The operations a caller who must change their password may still use (`Scope::OwnAccount`).
const OWN_ACCOUNT: [&str; 3] = ["changePassword", "me", "logout"];

const WHY: &str = "with `\"code\": \"password_change_required\"`: the caller's Tokenkeeper session must \
                   change its password first (`POST /api/auth/change-password`)";

pub struct PasswordChangeRequired;

impl Modify for PasswordChangeRequired {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let own = op.operation_id.as_deref().is_some_and(|id| OWN_ACCOUNT.contains(&id));
                if !authenticated || own {
                    continue;
                }
                match op.responses.responses.get_mut("403") {
                    Some(RefOr::T(existing)) => {
                        existing.description = format!("{}; or, {WHY}", existing.description);
                    }
                    _ => {
                        let response = ResponseBuilder::new().description(format!("Refused {WHY}")).content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("PasswordChangeRequiredError")))
                                .build(),
                        );
                        op.responses.responses.insert("403".into(), response.into());
                    }
                }
            }
        }
    }
}
