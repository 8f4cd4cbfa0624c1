use kit::config::Platform;
use kit::testing::TestInfra;
use kit::tokens::{Jwks, Verifier};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, jwt_parts, test_config};

#[tokio::test]
async fn the_jwks_verifies_access_tokens() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;

    let res = app.send(app.request(reqwest::Method::GET, "/api/auth/.well-known/jwks.json")).await;
    assert_eq!(res.status, 200);
    let jwks: Jwks = serde_json::from_value(res.body).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let key = &jwks.keys[0];
    assert_eq!(
        (key.kty.as_str(), key.crv.as_str(), key.alg.as_str(), key.use_.as_str()),
        ("OKP", "Ed25519", "EdDSA", "sig")
    );
    let (header, _) = jwt_parts(&session.access);
    assert_eq!(header["kid"], key.kid.as_str());

    let tokens = &app.platform.config.tokens;
    let claims = Verifier::new(&jwks, &tokens.issuer, &tokens.audience).verify(&session.access).expect("verifies");
    assert_eq!(claims.sub, session.user_id);
    assert_eq!(claims.username, user.username);
    assert_eq!(claims.roles, ["User"]);
    assert_eq!(claims.tv, 0);
    assert!(Verifier::new(&jwks, &tokens.issuer, "another-audience").verify(&session.access).is_err());
}

/// Instances starting together on one database must sign with the same key, or tokens from one
/// would fail at the others.
#[tokio::test]
async fn instances_started_together_share_one_signing_key() {
    let infra = TestInfra::new().await;
    let platform = Platform::new(infra.config.clone(), "auth").unwrap();
    // Migrate first: the race under test is the one for the first signing key.
    platform.database("auth", &ollamanet_auth::MIGRATIONS).await.unwrap();
    let (config, shutdown) = (test_config(), CancellationToken::new());
    let start = || ollamanet_auth::start(&platform, &config, shutdown.clone());
    let (a, b) = tokio::join!(start(), start());
    let (a, b) = (a.expect("first instance"), b.expect("second instance"));
    let (ja, jb) = tokio::join!(a.identity.jwks(), b.identity.jwks());
    let (ja, jb) = (ja.unwrap(), jb.unwrap());
    assert_eq!(ja.keys.len(), 1);
    assert_eq!(ja, jb);
    shutdown.cancel();
}
