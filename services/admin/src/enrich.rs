//! "Enrich from engine": the fields an engine knows of a model (its `/api/show`), asked of the
//! inference service on the admin's behalf, as a change to the catalog entry.

use axum::body::Body;
use http::{HeaderValue, Method, Request, header};
use http_body_util::BodyExt;
use kit::authn::Identity;
use kit::upstream::{Upstream, UpstreamError};
use ollama_api::types::{ShowRequest, ShowResponse};
use ollamanet_catalog::ModelChange;
use serde_json::Value;

use crate::error::AdminError;

const SHOW_PATH: &str = "/ollama/api/show";
/// `/api/show` without `verbose` is small; anything larger is refused.
const MAX_SHOW: usize = 4 * 1024 * 1024;

/// Who asks: the admin's identity (in-process) and credential (over the network).
pub struct OnBehalf {
    pub identity: Identity,
    pub authorization: Option<HeaderValue>,
}

/// What the engines say about `model`, as a change that sets every field they know.
pub async fn from_engine(inference: &Upstream, who: &OnBehalf, model: &str) -> Result<ModelChange, AdminError> {
    let body = serde_json::to_vec(&ShowRequest { model: model.to_owned(), ..Default::default() })
        .map_err(|e| AdminError::Enrich("inference_failed", e.to_string()))?;
    let req = kit::upstream::on_behalf(
        Request::builder().method(Method::POST).uri(SHOW_PATH).header(header::CONTENT_TYPE, "application/json"),
        &who.identity,
        who.authorization.as_ref(),
    );
    let req = req.body(Body::from(body)).map_err(|e| AdminError::Enrich("inference_failed", e.to_string()))?;
    let res = inference.call(req).await.map_err(|e| match e {
        UpstreamError::NoInstance | UpstreamError::Connect(_) => AdminError::InferenceUnavailable,
        other => AdminError::Enrich("inference_failed", other.to_string()),
    })?;
    let status = res.status();
    let bytes = http_body_util::Limited::new(res.into_body(), MAX_SHOW)
        .collect()
        .await
        .map_err(|e| AdminError::Enrich("inference_failed", e.to_string()))?
        .to_bytes();
    if status == http::StatusCode::NOT_FOUND {
        return Err(AdminError::Enrich("model_not_found", format!("no engine has the model {model}")));
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
        return Err(AdminError::Enrich("inference_failed", format!("the engine answered {status}: {text}")));
    }
    let show: ShowResponse =
        serde_json::from_slice(&bytes).map_err(|e| AdminError::Enrich("inference_failed", e.to_string()))?;
    Ok(change_from(show))
}

fn change_from(show: ShowResponse) -> ModelChange {
    let info = &show.model_info;
    let arch = info.get("general.architecture").and_then(Value::as_str).map(str::to_owned);
    let int = |key: &str| info.get(key).and_then(Value::as_i64);
    let context = arch
        .as_deref()
        .and_then(|a| int(&format!("{a}.context_length")))
        .or(show.details.context_length.and_then(|c| i64::try_from(c).ok()));
    let capabilities =
        show.capabilities.iter().filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_owned)).collect();
    // `Some(Some(v))` sets a field; `None` leaves one the engines do not know.
    let known = |s: String| Some(s).filter(|s| !s.is_empty()).map(Some);
    let list = |l: Vec<String>| Some(l).filter(|l| !l.is_empty());
    ModelChange {
        format: known(show.details.format),
        family: known(show.details.family),
        families: list(show.details.families.unwrap_or_default()),
        parameter_size: known(show.details.parameter_size),
        parameter_count: int("general.parameter_count").map(Some),
        quantization_level: known(show.details.quantization_level),
        quantization_version: int("general.quantization_version").map(Some),
        architecture: arch.map(Some),
        file_type: int("general.file_type").map(|t| Some(t.to_string())),
        context_length: context.map(Some),
        license: known(show.license),
        template: known(show.template),
        modelfile: known(show.modelfile),
        capabilities: list(capabilities),
        ..ModelChange::default()
    }
}
