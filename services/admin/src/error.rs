//! Every way an admin operation can fail, and the problem (status and stable `code`) each is.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::Problem;
use ollamanet_catalog::CatalogError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// The engines could not describe the model (`code`: `model_not_found`, `inference_failed`).
    #[error("{1}")]
    Enrich(&'static str, String),
    #[error("the inference service is not reachable")]
    InferenceUnavailable,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database: {0}")]
    Connect(#[from] kit::db::DbError),
}

impl AdminError {
    pub fn into_problem(self) -> Problem {
        let msg = self.to_string();
        match self {
            AdminError::Catalog(e) => e.into_problem(),
            AdminError::BadRequest(code, _) => Problem::bad_request(code, msg),
            AdminError::Enrich("model_not_found", _) => Problem::new(StatusCode::NOT_FOUND, "model_not_found", msg),
            AdminError::Enrich(code, _) => Problem::new(StatusCode::BAD_GATEWAY, code, msg),
            AdminError::InferenceUnavailable => Problem::unavailable("inference_unavailable", msg),
            AdminError::Database(e) => kit::db::problem(&e),
            AdminError::Connect(e) => {
                tracing::error!(error = %e, "database connection failed");
                Problem::unavailable("database_unavailable", "the database is not reachable; retry shortly")
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}
