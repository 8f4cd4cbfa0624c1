//! What the inference service does for a request, whichever face it came through: check the
//! model, take an admission slot, relay to a node.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use kit::authn::Identity;
use ollama_api::types::{ChatRequest, EmbedRequest, EmbeddingsRequest, GenerateRequest};
use serde::Serialize;

use crate::access::ModelAccess;
use crate::admission::Admission;
use crate::engines::Engines;
use crate::error::{Face, FaceError};
use crate::fleet::Fleet;
use crate::limits::{LoadLimits, LoadSettings};
use crate::relay::{self, Job, Relayed};
use crate::usage::UsageSink;

pub struct Service {
    pub fleet: Arc<Fleet>,
    pub engines: Arc<Engines>,
    pub admission: Arc<Admission>,
    pub access: Arc<dyn ModelAccess>,
    pub usage: UsageSink,
    pub first_byte_timeout: Duration,
    pub limits: LoadLimits,
}

/// A native request the service relays to a node.
pub trait NativeRequest: LoadSettings + Serialize {
    fn model(&self) -> &str;
    /// Whether the node will answer with a stream (Ollama streams unless told not to).
    fn streaming(&self) -> bool;
}

macro_rules! native_request {
    ($($t:ty => $streaming:expr),*) => {$(
        impl NativeRequest for $t {
            fn model(&self) -> &str {
                &self.model
            }

            fn streaming(&self) -> bool {
                ($streaming)(self)
            }
        }
    )*};
}

native_request!(
    ChatRequest => ChatRequest::is_streaming,
    GenerateRequest => GenerateRequest::is_streaming,
    EmbedRequest => |_: &EmbedRequest| false,
    EmbeddingsRequest => |_: &EmbeddingsRequest| false
);

/// The one `{"queue_position": n}` line a streaming caller that asked for queue events gets
/// each time its place changes.
/// How long a request waits for the fleet's first probes after the service started.
const FIRST_PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn position_line(position: usize) -> Bytes {
    Bytes::from(format!("{{\"queue_position\":{position}}}\n"))
}

impl Service {
    /// Refuses a request for a model the caller may not use or no node has, before it waits in
    /// any queue. A model the caller may not see is "not found", like one that does not exist.
    pub async fn check_model(&self, face: Face, who: &Identity, model: &str) -> Result<(), FaceError> {
        if model.is_empty() {
            return Err(FaceError::bad_request(face, "model is required"));
        }
        if !self.access.allowed(who, model).await {
            return Err(FaceError::not_found(face, model));
        }
        if self.fleet.candidates(model).is_empty() {
            // Right after start nothing is known yet: wait for the first probes, not refuse.
            let _ = tokio::time::timeout(FIRST_PROBE_WAIT, self.fleet.first_probe()).await;
        }
        if self.fleet.candidates(model).is_empty() {
            if self.fleet.capacity() == 0 {
                let mut e = FaceError::new(face, StatusCode::SERVICE_UNAVAILABLE, "no inference engine is available");
                e.retry_after = Some(5);
                return Err(e);
            }
            return Err(FaceError::not_found(face, model));
        }
        Ok(())
    }

    /// The job for a request read from a caller (see `ollama_api::strict`): its model checked, its
    /// load settings limited, and encoded again, so that the node receives exactly what was
    /// checked.
    pub async fn job(
        &self,
        face: Face,
        path: &'static str,
        who: Identity,
        mut req: impl NativeRequest,
    ) -> Result<Job, FaceError> {
        self.check_model(face, &who, req.model()).await?;
        self.limits.apply(&who, &mut req);
        let body = serde_json::to_vec(&req)
            .map_err(|e| FaceError::new(face, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let face = match face {
            Face::Ollama => "ollama",
            Face::OpenAi => "openai",
        };
        Ok(Job { path, model: req.model().to_owned(), body: body.into(), identity: who, face })
    }

    /// A generation: waits for a slot, then relays. The slot is held until the answer's body
    /// is finished or dropped.
    pub async fn generate(&self, face: Face, job: Job) -> Result<Relayed, FaceError> {
        let permit =
            self.admission.acquire(job.identity.user_id, |_| {}).await.map_err(|r| FaceError::refused(face, r))?;
        self.relay(face, job, Some(permit)).await
    }

    /// Relays without admission (embeddings, model information).
    pub async fn relay(
        &self,
        face: Face,
        job: Job,
        permit: Option<crate::admission::Permit>,
    ) -> Result<Relayed, FaceError> {
        let candidates = self.fleet.candidates(&job.model);
        relay::send(candidates, job, permit, self.first_byte_timeout, self.usage.clone())
            .await
            .map_err(|e| FaceError::relay(face, e))
    }

    /// A streamed generation on the Ollama face for a caller that asked for queue events: the
    /// answer starts at once, with a `{"queue_position": n}` line whenever the caller's place
    /// changes, then the engine's lines. Errors after that are a final `{"error": …}` line.
    pub fn generate_with_queue_events(self: &Arc<Self>, job: Job) -> Body {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
        let service = self.clone();
        tokio::spawn(async move {
            let positions = tx.clone();
            let acquired = service
                .admission
                .acquire(job.identity.user_id, |p| {
                    // A full channel only loses an intermediate position.
                    let _ = positions.try_send(position_line(p));
                })
                .await;
            let permit = match acquired {
                Ok(p) => p,
                Err(refused) => {
                    let _ = tx.send(FaceError::refused(Face::Ollama, refused).line()).await;
                    return;
                }
            };
            let relayed = match service.relay(Face::Ollama, job, Some(permit)).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(e.line()).await;
                    return;
                }
            };
            let mut body = relayed.body.into_stream();
            while let Some(chunk) = body.next().await {
                match chunk {
                    // The caller went away: dropping the body stops the engine.
                    Ok(bytes) => {
                        if tx.send(bytes).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ =
                            tx.send(FaceError::new(Face::Ollama, StatusCode::BAD_GATEWAY, e.to_string()).line()).await;
                        return;
                    }
                }
            }
        });
        Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        }))
    }
}

/// Reads a (small) error body a node sent and turns it into the face's error.
pub async fn node_error(face: Face, relayed: Relayed) -> FaceError {
    use http_body_util::BodyExt;
    let status = crate::relay::gateway_status(relayed.status);
    let bytes = relayed.body.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let message = serde_json::from_slice::<ollama_api::types::ErrorResponse>(&bytes)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
    FaceError::new(face, status, message)
}
