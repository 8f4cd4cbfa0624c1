//! The engine's key. The engine's API deletes models, fills the disk, pulls from any URL and runs
//! every model, so when it listens on its own (`serve --only engine`) every request must carry the
//! key (`Authorization: Bearer <key>`); inference services present it. Beside the inference
//! service the engine has no listener at all: inference calls its router in-process.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Keys shorter than this are refused: the key is the engine's only defence.
const MIN_KEY_LEN: usize = 16;

/// Why a configured key is refused, if it is.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.len() < MIN_KEY_LEN {
        return Err(format!("must be at least {MIN_KEY_LEN} characters (e.g. `openssl rand -hex 32`)"));
    }
    if key.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces (it travels in a header)".into());
    }
    Ok(())
}

/// `router` with every request (unknown paths and operational routes included) refused with 401
/// unless it carries `key`. The presented and expected keys are compared as SHA-256 digests in
/// constant time, so that neither their contents nor their lengths show in the response time.
pub fn require_key(router: Router, key: &str) -> Router {
    let expected: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    router.layer(middleware::from_fn(move |req: Request, next: Next| async move {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .map(|k| <[u8; 32]>::from(Sha256::digest(k.trim_ascii())));
        match presented {
            Some(digest) if bool::from(digest.ct_eq(&expected)) => next.run(req).await,
            _ => unauthorized(),
        }
    }))
}

/// Ollama's error shape, so that Ollama clients show the reason.
fn unauthorized() -> Response {
    let mut res =
        (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "unauthorized: this engine needs its key"})))
            .into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"ollamanet-engine\""));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_unprintable_keys_are_refused() {
        assert!(check_key("short").is_err());
        assert!(check_key("sixteen chars!!!").is_err(), "a space cannot travel in the header as sent");
        assert!(check_key("0123456789abcdef").is_ok());
    }
}
