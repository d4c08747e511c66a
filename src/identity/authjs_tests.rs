//! Tests of the Auth.js decoder, on tokens made by the real `@auth/core` (tests/fixtures/authjs).
use super::*;

const FIXTURES: &str = include_str!("../../tests/fixtures/authjs/fixtures.json");

fn fixtures() -> Value {
    serde_json::from_str(FIXTURES).expect("fixtures.json parses")
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn accepted(f: &Value) -> Vec<SecretString> {
    f["accepted_secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| secret(s.as_str().unwrap()))
        .collect()
}

fn now(f: &Value) -> i64 {
    f["now"].as_i64().unwrap()
}

fn tok<'a>(f: &'a Value, name: &str) -> &'a Value {
    let t = &f["tokens"][name];
    assert!(t.is_object(), "fixture {name} missing");
    t
}

fn expected(t: &Value) -> AuthJsClaims {
    let e = &t["expected"];
    AuthJsClaims {
        user_id: e["user_id"].as_str().unwrap().to_owned(),
        issued_at: e["iat"].as_i64(),
        auth_time: e["auth_time"].as_i64(),
        expires_at: e["exp"].as_i64(),
    }
}

fn decode_fixture(f: &Value, name: &str) -> Result<AuthJsClaims, AuthJsError> {
    let t = tok(f, name);
    decode(
        t["token"].as_str().unwrap(),
        t["salt"].as_str().unwrap(),
        &accepted(f),
        now(f),
    )
}

const VALID: [&str; 7] = [
    "valid",
    "valid_with_auth_time",
    "valid_id_only",
    "valid_second_secret",
    "valid_secure_cookie",
    "valid_no_kid",
    "chunked",
];

#[test]
fn every_valid_fixture_decodes_with_expected_claims() {
    let f = fixtures();
    for name in VALID {
        let t = tok(&f, name);
        let claims = decode_fixture(&f, name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(claims, expected(t), "{name}");
        assert!(claims.expires_at.is_some());
    }
}

#[test]
fn specific_claims() {
    let f = fixtures();
    let v = decode_fixture(&f, "valid").unwrap();
    assert_eq!(v.user_id, "user-authjs-1");
    assert_eq!(v.auth_time, None);
    assert_eq!(v.signed_in_at(), v.issued_at);
    assert_eq!(v.expires_at, Some(4102444800));

    let a = decode_fixture(&f, "valid_with_auth_time").unwrap();
    assert_eq!(a.user_id, "user-authjs-auth-time");
    assert!(a.auth_time.unwrap() < a.issued_at.unwrap());
    assert_eq!(a.signed_in_at(), a.auth_time);

    let i = decode_fixture(&f, "valid_id_only").unwrap();
    assert!(tok(&f, "valid_id_only")["expected"]["sub"].is_null());
    assert_eq!(i.user_id, "user-authjs-id-only");
}

#[test]
fn kid_is_the_jwk_thumbprint_of_the_derived_key() {
    let f = fixtures();
    let one = f["secrets"]["one"].as_str().unwrap();
    let two = f["secrets"]["two"].as_str().unwrap();
    for (name, secret, salt) in [
        ("valid", one, COOKIE_NAMES[0]),
        ("valid_second_secret", two, COOKIE_NAMES[0]),
        ("valid_secure_cookie", one, COOKIE_NAMES[1]),
    ] {
        let kid = tok(&f, name)["header"]["kid"].as_str().unwrap();
        let key = derive_key(secret.as_bytes(), salt);
        assert_eq!(jwk_thumbprint(key.as_ref()), kid, "{name}");
    }
    assert!(tok(&f, "valid_no_kid")["header"].get("kid").is_none());
}

#[test]
fn rotation_any_listed_secret_in_any_order() {
    let f = fixtures();
    let one = secret(f["secrets"]["one"].as_str().unwrap());
    let two = secret(f["secrets"]["two"].as_str().unwrap());
    let other = secret(f["secrets"]["other"].as_str().unwrap());
    let n = now(&f);
    for name in ["valid_second_secret", "valid_no_kid"] {
        let t = tok(&f, name)["token"].as_str().unwrap();
        let salt = COOKIE_NAMES[0];
        let want = expected(tok(&f, name));
        for list in [
            vec![one.clone(), two.clone()],
            vec![two.clone(), one.clone()],
            vec![other.clone(), one.clone(), two.clone()],
            vec![two.clone()],
        ] {
            assert_eq!(decode(t, salt, &list, n).unwrap(), want, "{name}");
        }
        assert_eq!(
            decode(t, salt, std::slice::from_ref(&one), n),
            Err(AuthJsError::BadSignature),
            "{name}"
        );
    }
    // A token made with secret one is not accepted with only secret two.
    let t = tok(&f, "valid")["token"].as_str().unwrap();
    assert_eq!(
        decode(t, COOKIE_NAMES[0], &[two, other], n),
        Err(AuthJsError::BadSignature)
    );
    assert_eq!(decode(t, COOKIE_NAMES[0], &[], n), Err(AuthJsError::NoSecret));
}

#[test]
fn salt_is_bound_and_bearer_tries_both_cookie_names() {
    let f = fixtures();
    let secrets = accepted(&f);
    let n = now(&f);
    let secure = tok(&f, "valid_secure_cookie")["token"].as_str().unwrap();
    let plain = tok(&f, "valid")["token"].as_str().unwrap();
    assert_eq!(
        decode(secure, COOKIE_NAMES[0], &secrets, n),
        Err(AuthJsError::BadSignature)
    );
    assert_eq!(
        decode(plain, COOKIE_NAMES[1], &secrets, n),
        Err(AuthJsError::BadSignature)
    );
    assert_eq!(
        decode_bearer(secure, &secrets, n).unwrap(),
        expected(tok(&f, "valid_secure_cookie"))
    );
    for name in VALID {
        let t = tok(&f, name);
        assert_eq!(
            decode_bearer(t["token"].as_str().unwrap(), &secrets, n).unwrap(),
            expected(t),
            "{name}"
        );
    }
    let expired = tok(&f, "expired")["token"].as_str().unwrap();
    assert_eq!(decode_bearer(expired, &secrets, n), Err(AuthJsError::Expired));
    let other = tok(&f, "other_secret")["token"].as_str().unwrap();
    assert_eq!(decode_bearer(other, &secrets, n), Err(AuthJsError::BadSignature));
    assert_eq!(decode_bearer("a.b.c", &secrets, n), Err(AuthJsError::Malformed));
}

#[test]
fn expired_other_secret_and_tampered_are_refused() {
    let f = fixtures();
    assert_eq!(decode_fixture(&f, "expired"), Err(AuthJsError::Expired));
    assert_eq!(decode_fixture(&f, "other_secret"), Err(AuthJsError::BadSignature));
    assert_eq!(decode_fixture(&f, "tampered"), Err(AuthJsError::BadSignature));

    // The expired token is genuine: it decodes before its exp, and exp == now is expired.
    let t = tok(&f, "expired");
    let exp = t["expected"]["exp"].as_i64().unwrap();
    let token = t["token"].as_str().unwrap();
    let secrets = accepted(&f);
    assert_eq!(decode(token, COOKIE_NAMES[0], &secrets, exp - 1).unwrap(), expected(t));
    assert_eq!(decode(token, COOKIE_NAMES[0], &secrets, exp), Err(AuthJsError::Expired));

    // The other-secret token is genuine too.
    let t = tok(&f, "other_secret");
    let other = [secret(f["secrets"]["other"].as_str().unwrap())];
    assert_eq!(
        decode(t["token"].as_str().unwrap(), COOKIE_NAMES[0], &other, now(&f)).unwrap(),
        expected(t)
    );
}

/// Flipping any one bit of the IV, ciphertext or tag is caught by the MAC.
#[test]
fn any_tampering_is_bad_signature() {
    let f = fixtures();
    let secrets = accepted(&f);
    let n = now(&f);
    for name in ["valid", "valid_no_kid"] {
        let token = tok(&f, name)["token"].as_str().unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        for part in [2usize, 3, 4] {
            let bytes = URL_SAFE_NO_PAD.decode(parts[part]).unwrap();
            for i in [0, bytes.len() / 2, bytes.len() - 1] {
                let mut b = bytes.clone();
                b[i] ^= 0x80;
                let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                p[part] = URL_SAFE_NO_PAD.encode(&b);
                assert_eq!(
                    decode(&p.join("."), COOKIE_NAMES[0], &secrets, n),
                    Err(AuthJsError::BadSignature),
                    "{name} part {part} byte {i}"
                );
            }
        }
    }
}

/// The protected header is authenticated: re-encoding it (even equivalently) breaks the tag.
#[test]
fn header_is_authenticated() {
    let f = fixtures();
    let token = tok(&f, "valid_no_kid")["token"].as_str().unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"enc":"A256CBC-HS512","alg":"dir"}"#);
    assert_eq!(
        decode(&format!("{header}.{rest}"), COOKIE_NAMES[0], &accepted(&f), now(&f)),
        Err(AuthJsError::BadSignature)
    );
    // A forged kid that matches no secret.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"dir","enc":"A256CBC-HS512","kid":"nope"}"#);
    assert_eq!(
        decode(&format!("{header}.{rest}"), COOKIE_NAMES[0], &accepted(&f), now(&f)),
        Err(AuthJsError::BadSignature)
    );
}

#[test]
fn chunked_cookie_reassembles_in_index_order() {
    let f = fixtures();
    let t = tok(&f, "chunked");
    let token = t["token"].as_str().unwrap();
    let chunks: Vec<&str> = t["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(chunks.len() >= 2);
    assert!(token.len() > 4096);
    assert_eq!(chunks.concat(), token);
    assert!(chunks.iter().all(|c| c.len() <= 3936));
    let name = |i: usize| format!("{}.{i}", COOKIE_NAMES[0]);

    let in_order: Vec<String> = (0..chunks.len())
        .map(|i| format!("{}={}", name(i), chunks[i]))
        .collect();
    let mut shuffled = in_order.clone();
    shuffled.reverse();
    shuffled.rotate_left(1);
    assert_ne!(shuffled, in_order);

    for cookies in [in_order.clone(), shuffled] {
        let mut parts = vec!["theme=dark".to_owned(), "authjs.csrf-token=abc%7Cdef".to_owned()];
        parts.extend(cookies);
        parts.insert(2, "authjs.callback-url=http%3A%2F%2Flocalhost".to_owned());
        let header = parts.join("; ");
        let (salt, got) = session_token_from_cookies(&header).unwrap();
        assert_eq!(salt, COOKIE_NAMES[0]);
        assert_eq!(got, token);
        assert_eq!(decode(&got, salt, &accepted(&f), now(&f)).unwrap(), expected(t));
    }

    // Several Cookie headers joined with "; " (no space variants too).
    let header = format!("{};{}", in_order[..1].join("; "), in_order[1..].join(";"));
    assert_eq!(session_token_from_cookies(&header).unwrap().1, token);

    // A missing chunk: no token.
    let mut gap = in_order.clone();
    gap.remove(1);
    assert_eq!(session_token_from_cookies(&gap.join("; ")), None);
    // Without chunk 0: no token.
    assert_eq!(session_token_from_cookies(&in_order[1..].join("; ")), None);
}

#[test]
fn cookie_lookup() {
    let f = fixtures();
    let plain = tok(&f, "valid")["token"].as_str().unwrap();
    let secure = tok(&f, "valid_secure_cookie")["token"].as_str().unwrap();

    assert_eq!(session_token_from_cookies(""), None);
    assert_eq!(session_token_from_cookies("a=b; c=d"), None);
    assert_eq!(session_token_from_cookies("authjs.session-token="), None);
    assert_eq!(session_token_from_cookies("xauthjs.session-token=abc"), None);
    assert_eq!(session_token_from_cookies("authjs.session-tokens=abc"), None);
    assert_eq!(session_token_from_cookies("authjs.session-token.x=abc"), None);

    let h = format!("a=b; authjs.session-token={plain}; c=d");
    assert_eq!(
        session_token_from_cookies(&h),
        Some((COOKIE_NAMES[0], plain.to_owned()))
    );
    let h = format!("__Secure-authjs.session-token={secure}");
    assert_eq!(
        session_token_from_cookies(&h),
        Some((COOKIE_NAMES[1], secure.to_owned()))
    );
    // Both present: the __Secure- one wins.
    let h = format!("authjs.session-token={plain}; __Secure-authjs.session-token={secure}");
    let (salt, got) = session_token_from_cookies(&h).unwrap();
    assert_eq!((salt, got.as_str()), (COOKIE_NAMES[1], secure));
    assert!(decode(&got, salt, &accepted(&f), now(&f)).is_ok());
    // Quoted value, surrounding whitespace.
    let h = format!("  authjs.session-token = \"{plain}\" ;other=1");
    assert_eq!(session_token_from_cookies(&h).unwrap().1, plain);
    // Duplicate names: the first wins.
    let h = format!("authjs.session-token={plain}; authjs.session-token=junk");
    assert_eq!(session_token_from_cookies(&h).unwrap().1, plain);
    // Unchunked preferred over stray chunks.
    let h = format!("authjs.session-token.0=junk; authjs.session-token={plain}");
    assert_eq!(session_token_from_cookies(&h).unwrap().1, plain);
}

#[test]
fn looks_like_jwe_counts_parts() {
    let f = fixtures();
    assert!(looks_like_jwe(tok(&f, "valid")["token"].as_str().unwrap()));
    assert!(looks_like_jwe("a..c.d.e"));
    assert!(!looks_like_jwe("a.b.c"));
    assert!(!looks_like_jwe("a.b.c.d.e.f"));
    assert!(!looks_like_jwe(""));
    assert!(!looks_like_jwe("tk_0123456789abcdef"));
}

fn with_header(header_json: &str, token: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header_json))
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let f = fixtures();
    let secrets = accepted(&f);
    let n = now(&f);
    let valid = tok(&f, "valid")["token"].as_str().unwrap();
    let parts: Vec<&str> = valid.split('.').collect();
    let join = |p: &[&str]| p.join(".");

    let malformed = [
        String::new(),
        "....".to_owned(),
        "a.b.c".to_owned(),
        join(&parts[..4]),
        format!("{valid}.x"),
        format!("{valid}="),
        // bad base64 in each part
        join(&["!!!", parts[1], parts[2], parts[3], parts[4]]),
        join(&[parts[0], parts[1], "***", parts[3], parts[4]]),
        join(&[parts[0], parts[1], parts[2], "a+b/", parts[4]]),
        join(&[parts[0], parts[1], parts[2], parts[3], "%%"]),
        // padded base64 is not base64url
        join(&[parts[0], parts[1], parts[2], parts[3], &format!("{}==", parts[4])]),
        // non-empty encrypted key
        join(&[parts[0], "AAAA", parts[2], parts[3], parts[4]]),
        // wrong sizes
        join(&[parts[0], "", "AAAA", parts[3], parts[4]]),
        join(&[parts[0], "", parts[2], "", parts[4]]),
        join(&[parts[0], "", parts[2], "AAAA", parts[4]]),
        join(&[parts[0], "", parts[2], parts[3], "AAAA"]),
        // header not JSON / not an object
        with_header("not json", valid),
        with_header("[1,2]", valid),
        with_header(r#"{"alg":"dir","enc":"A256CBC-HS512","kid":5}"#, valid),
        // non-ASCII
        format!("{valid}é"),
        // oversized
        "a".repeat(MAX_TOKEN_LEN + 1),
    ];
    for t in &malformed {
        assert_eq!(
            decode(t, COOKIE_NAMES[0], &secrets, n),
            Err(AuthJsError::Malformed),
            "{:.80}",
            t
        );
        assert!(decode_bearer(t, &secrets, n).is_err());
    }

    let unsupported = [
        r#"{"alg":"A256KW","enc":"A256CBC-HS512"}"#,
        r#"{"alg":"none","enc":"A256CBC-HS512"}"#,
        r#"{"enc":"A256CBC-HS512"}"#,
        r#"{"alg":"dir","enc":"A256GCM"}"#,
        r#"{"alg":"dir","enc":"A128CBC-HS256"}"#,
        r#"{"alg":"dir"}"#,
        r#"{"alg":"dir","enc":"A256CBC-HS512","zip":"DEF"}"#,
        r#"{"alg":"dir","enc":"A256CBC-HS512","crit":["exp"]}"#,
        r#"{"alg":"DIR","enc":"a256cbc-hs512"}"#,
    ];
    for h in unsupported {
        assert_eq!(
            decode(&with_header(h, valid), COOKIE_NAMES[0], &secrets, n),
            Err(AuthJsError::Unsupported),
            "{h}"
        );
    }
}

/// Every single-character substitution of a real token is refused without panicking.
#[test]
fn mutations_never_panic() {
    let f = fixtures();
    let secrets = accepted(&f);
    let n = now(&f);
    let token = tok(&f, "valid")["token"].as_str().unwrap();
    for i in 0..token.len() {
        for c in ['.', 'A', '_', '=', ' '] {
            let mut t = token.to_owned();
            if token.as_bytes()[i] == c as u8 {
                continue;
            }
            t.replace_range(i..i + 1, &c.to_string());
            assert!(decode(&t, COOKIE_NAMES[0], &secrets, n).is_err(), "{i} {c}");
            assert!(decode_bearer(&t, &secrets, n).is_err(), "bearer {i} {c}");
            // A token alone is no cookie header: no session cookie is found in it.
            assert!(session_token_from_cookies(&t).is_none(), "cookies {i} {c}");
        }
        assert!(
            decode(token.get(..i).unwrap(), COOKIE_NAMES[0], &secrets, n).is_err(),
            "prefix of {i} bytes"
        );
    }
}

/// Builds a JWE the way Auth.js does (used for payloads `encode` would not produce).
fn encrypt_for_test(secret: &str, salt: &str, payload: &[u8]) -> String {
    use cbc::cipher::BlockEncryptMut;
    let key = derive_key(secret.as_bytes(), salt);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"dir","enc":"A256CBC-HS512"}"#);
    let iv = [7u8; IV_LEN];
    let mut buf = payload.to_vec();
    buf.resize(payload.len() + 16, 0);
    let ct = cbc::Encryptor::<Aes256>::new_from_slices(&key[32..], &iv)
        .unwrap()
        .encrypt_padded_mut::<Pkcs7>(&mut buf, payload.len())
        .unwrap()
        .to_vec();
    let jwe = ParsedJwe {
        aad: header.as_bytes(),
        kid: None,
        iv: iv.to_vec(),
        ciphertext: ct.clone(),
        tag: vec![],
    };
    let tag = jwe.compute_tag(&key[..32]);
    format!(
        "{header}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(&ct),
        URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
    )
}

#[test]
fn own_encryption_matches_authjs_format() {
    // Sanity check of the test helper against the real library's output: both decode.
    let f = fixtures();
    let one = f["secrets"]["one"].as_str().unwrap();
    let t = encrypt_for_test(one, COOKIE_NAMES[0], br#"{"sub":"u","exp":4102444800,"iat":1}"#);
    let c = decode(&t, COOKIE_NAMES[0], &accepted(&f), now(&f)).unwrap();
    assert_eq!(c.user_id, "u");
    assert_eq!(c.signed_in_at(), Some(1));
}

#[test]
fn claim_validation() {
    let f = fixtures();
    let one = f["secrets"]["one"].as_str().unwrap();
    let secrets = accepted(&f);
    let n = 1_000_000;
    let run = |payload: &str| {
        decode(
            &encrypt_for_test(one, COOKIE_NAMES[0], payload.as_bytes()),
            COOKIE_NAMES[0],
            &secrets,
            n,
        )
    };
    use AuthJsError::*;
    assert_eq!(run(r#"{"sub":"u","exp":1000001}"#).unwrap().user_id, "u");
    assert_eq!(run(r#"{"sub":"u","exp":1000000}"#), Err(Expired));
    assert_eq!(run(r#"{"sub":"u"}"#), Err(MissingExpiry));
    assert_eq!(run(r#"{"sub":"u","exp":null}"#), Err(MissingExpiry));
    assert_eq!(run(r#"{"sub":"u","exp":"2000000"}"#), Err(Malformed));
    assert_eq!(run(r#"{"sub":"u","exp":2000000,"iat":"x"}"#), Err(Malformed));
    assert_eq!(run(r#"{"sub":"u","exp":2000000,"auth_time":true}"#), Err(Malformed));
    assert_eq!(run(r#"{"sub":"u","exp":2000000,"nbf":1000001}"#), Err(NotYetValid));
    assert!(run(r#"{"sub":"u","exp":2000000,"nbf":1000000}"#).is_ok());
    assert_eq!(run(r#"{"exp":2000000}"#), Err(MissingSubject));
    assert_eq!(run(r#"{"sub":"","exp":2000000}"#), Err(MissingSubject));
    assert_eq!(run(r#"{"sub":5,"exp":2000000}"#), Err(MissingSubject));
    assert_eq!(run(r#"{"id":"","exp":2000000}"#), Err(MissingSubject));
    assert_eq!(run(r#"{"id":7,"exp":2000000}"#), Err(MissingSubject));
    assert_eq!(run(r#"{"sub":null,"id":"i","exp":2000000}"#).unwrap().user_id, "i");
    assert_eq!(run(r#"{"sub":"s","id":"i","exp":2000000}"#).unwrap().user_id, "s");
    let c = run(r#"{"sub":"u","exp":2000000.9,"iat":999999.5,"auth_time":5}"#).unwrap();
    assert_eq!(
        c,
        AuthJsClaims {
            user_id: "u".into(),
            issued_at: Some(999999),
            auth_time: Some(5),
            expires_at: Some(2000000)
        }
    );
    assert_eq!(c.signed_in_at(), Some(5));
    assert_eq!(run(r#"{"sub":"u","exp":1e300}"#), Err(Malformed));
    assert_eq!(run("[1]"), Err(Malformed));
    assert_eq!(run("not json"), Err(Malformed));
    assert_eq!(run(""), Err(Malformed));
}

#[test]
fn errors_and_debug_leak_nothing() {
    let f = fixtures();
    let one = f["secrets"]["one"].as_str().unwrap();
    for name in ["expired", "other_secret", "tampered"] {
        let token = tok(&f, name)["token"].as_str().unwrap();
        let e = decode(token, COOKIE_NAMES[0], &accepted(&f), now(&f)).unwrap_err();
        for s in [format!("{e}"), format!("{e:?}")] {
            assert!(!s.contains(token.get(..20).unwrap()) && !s.contains(one), "{s}");
        }
    }
    let c = decode_fixture(&f, "valid").unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(one) && !dbg.contains(tok(&f, "valid")["token"].as_str().unwrap().get(..20).unwrap()));
}
