//! The platform's services, called as the signed-in visitor: their identity in-process, their
//! access token over the network.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use http_body_util::BodyExt;
use kit::authn::Identity;
use kit::upstream::Upstream;
use serde::Deserialize;

use crate::error::WebError;

/// GETs `path` from `upstream` as the visitor and parses the JSON answer.
async fn get_json<T: serde::de::DeserializeOwned>(
    upstream: &Upstream,
    what: &'static str,
    identity: &Identity,
    access: &str,
    path: &str,
) -> Result<T, WebError> {
    let bearer = HeaderValue::from_str(&format!("Bearer {access}")).map_err(|e| WebError::Internal(e.to_string()))?;
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, bearer)
        .extension(identity.clone())
        .body(Body::empty())
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let res = upstream.call(req).await.map_err(|_| WebError::Unavailable(what))?;
    if !res.status().is_success() {
        return Err(WebError::Unavailable(what));
    }
    let bytes = res.into_body().collect().await.map_err(|_| WebError::Unavailable(what))?.to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| WebError::Internal(e.to_string()))
}

#[derive(Clone)]
pub struct Conversations(pub Option<Upstream>);

impl Conversations {
    /// The titles of the visitor's most recent conversations.
    pub async fn titles(&self, identity: &Identity, access: &str) -> Result<Vec<String>, WebError> {
        #[derive(Deserialize)]
        struct Page {
            items: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            title: String,
        }
        let Some(upstream) = &self.0 else {
            return Err(WebError::Unavailable("the conversation service"));
        };
        let page: Page =
            get_json(upstream, "the conversation service", identity, access, "/api/conversations?limit=20").await?;
        Ok(page.items.into_iter().map(|i| i.title).collect())
    }
}
