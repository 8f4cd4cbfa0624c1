use axum::response::{IntoResponse, Response};
use kit::Problem;
use ollamanet_catalog::CatalogError;

#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{0}")]
    Internal(String),
    #[error("database: {0}")]
    Connect(#[from] kit::db::DbError),
}

impl IntoResponse for ExploreError {
    fn into_response(self) -> Response {
        let msg = self.to_string();
        match self {
            ExploreError::Catalog(e) => e.into_problem(),
            ExploreError::BadRequest(code, _) => Problem::bad_request(code, msg),
            ExploreError::Internal(e) => {
                tracing::error!(error = %e, "explore failed");
                Problem::internal()
            }
            ExploreError::Connect(e) => {
                tracing::error!(error = %e, "database connection failed");
                Problem::unavailable("database_unavailable", "the database is not reachable; retry shortly")
            }
        }
        .into_response()
    }
}
