//! The JWT attack matrix, through the gateway: every forged, tampered, stale or misused token is
//! a 401 and never a 5xx. Tokens are forged with the platform's real signing key where the
//! attack needs a valid signature, so that each case fails for the reason it names.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{Deployment, Mode, PASSWORD};

struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

/// The newest signing key, read from the auth database the way an attacker who stole it would.
async fn signing_key(d: &Deployment) -> SigningKey {
    let platform = kit::config::Platform::new(d.config.infra.clone(), "test").unwrap();
    let url = platform.database_url("auth");
    let sql = "SELECT kid, private_key, public_key FROM signing_keys ORDER BY generation DESC LIMIT 1";
    let (kid, pkcs8, public): (String, Vec<u8>, Vec<u8>) = if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_as(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_as(sql).fetch_one(&mut c).await.unwrap()
    };
    SigningKey { kid, pkcs8, public }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(user: &Value, tv: i64) -> Value {
    json!({
        "iss": "ollamanet", "aud": "ollamanet",
        "sub": user["id"], "email": user["email"], "username": user["username"], "roles": user["roles"],
        "tv": tv, "iat": now(), "nbf": now(), "exp": now() + 600, "jti": "test",
    })
}

fn sign(key: &SigningKey, typ: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(typ.to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.pkcs8)).unwrap()
}

fn with_claim(user: &Value, key: &str, value: Value) -> Value {
    let mut c = claims(user, 0);
    c[key] = value;
    c
}

fn unsigned(header: Value, claims: &Value) -> String {
    format!("{}.{}.", B64.encode(header.to_string()), B64.encode(claims.to_string()))
}

async fn attack_matrix(mode: Mode) {
    let d = Deployment::start(mode).await;
    let registered = d.register("mallory").await;
    let user = &registered["user"];
    let refresh_token = registered["refresh_token"].as_str().unwrap().to_owned();
    let key = signing_key(&d).await;
    let kid = key.kid.as_str();

    // Control: a token forged with the real key and correct claims is accepted, so every
    // refusal below is due to the one thing each case changes.
    let good = sign(&key, "at+jwt", kid, &claims(user, 0));
    let (status, body) = d.call(Method::GET, "/api/auth/me", Some(&good), None).await;
    assert_eq!(status, StatusCode::OK, "control token must work: {body}");

    let valid_claims = claims(user, 0);
    let mut no_exp = valid_claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&h, &valid_claims, &EncodingKey::from_secret(&key.public)).unwrap()
    };
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut flipped = signature.to_owned().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let tampered_payload = B64.encode(with_claim(user, "roles", json!(["Admin", "User"])).to_string());

    let cases: Vec<(&str, String)> = vec![
        ("alg none", unsigned(json!({"alg": "none", "typ": "at+jwt", "kid": kid}), &valid_claims)),
        ("HS256 signed with the public key", hs256),
        ("wrong signature", format!("{head}.{payload}.{}", String::from_utf8(flipped).unwrap())),
        ("absent signature", format!("{head}.{payload}.")),
        ("no signature part", format!("{head}.{payload}")),
        ("payload swapped under a valid signature", format!("{head}.{tampered_payload}.{signature}")),
        ("expired", sign(&key, "at+jwt", kid, &with_claim(user, "exp", json!(now() - 3600)))),
        ("not yet valid", sign(&key, "at+jwt", kid, &with_claim(user, "nbf", json!(now() + 3600)))),
        ("issued in the future", sign(&key, "at+jwt", kid, &with_claim(user, "iat", json!(now() + 3600)))),
        ("missing exp", sign(&key, "at+jwt", kid, &no_exp)),
        ("wrong issuer", sign(&key, "at+jwt", kid, &with_claim(user, "iss", json!("someone-else")))),
        ("wrong audience", sign(&key, "at+jwt", kid, &with_claim(user, "aud", json!("another-app")))),
        ("wrong typ", sign(&key, "JWT", kid, &valid_claims)),
        ("refresh token as access token", refresh_token),
        ("unknown kid", sign(&key, "at+jwt", "no-such-key", &valid_claims)),
        ("path traversal kid", sign(&key, "at+jwt", "../../../../etc/passwd", &valid_claims)),
        ("sql injection kid", sign(&key, "at+jwt", "' OR '1'='1", &valid_claims)),
        ("huge kid", sign(&key, "at+jwt", &"k".repeat(4000), &valid_claims)),
        ("oversized token", format!("{good}{}", "A".repeat(10_000))),
        ("garbage", "not-a-token".into()),
        ("three dots of nothing", "..".into()),
        ("unknown user", sign(&key, "at+jwt", kid, &with_claim(user, "sub", json!(uuid::Uuid::now_v7())))),
        ("stale token version", sign(&key, "at+jwt", kid, &with_claim(user, "tv", json!(-1)))),
    ];
    for (name, token) in &cases {
        let (status, body) = d.call(Method::GET, "/api/auth/me", Some(token), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert!(body["code"].as_str().is_some_and(|c| !c.is_empty()), "{name}: problem body with a code: {body}");
    }

    // A token that was valid dies when the password changes.
    let (status, body) = d
        .call(
            Method::POST,
            "/api/auth/password/change",
            Some(&good),
            Some(json!({"current_password": PASSWORD, "new_password": "another long passphrase 7"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = d.call(Method::GET, "/api/auth/me", Some(&good), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "stale tv after password change: {body}");
    assert_eq!(body["code"], "token_revoked");
    let fresh = body_token(&d, "mallory", "another long passphrase 7").await;
    let (status, _) = d.call(Method::GET, "/api/auth/me", Some(&fresh), None).await;
    assert_eq!(status, StatusCode::OK);

    // Malformed Authorization headers.
    for value in ["Bearer", "Bearer ", "Basic bWFsbG9yeTpwYXNz", "bearer\tx", "Token abc"] {
        let res = d.client.get(d.at("/api/auth/me")).header("authorization", value).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "header {value:?}");
    }
}

async fn body_token(d: &Deployment, login: &str, password: &str) -> String {
    let (status, body) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": login, "password": password}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn jwt_attack_matrix_all_in_one() {
    attack_matrix(Mode::AllInOne).await;
}

#[tokio::test]
async fn jwt_attack_matrix_split() {
    attack_matrix(Mode::Split).await;
}
