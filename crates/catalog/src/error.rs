use kit::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid fields")]
    Validation(Vec<FieldError>),
    /// Also for a model the caller may not see: its existence is not disclosed.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("a model with this name is in the catalog already")]
    ModelExists,
    #[error("a tag with this name exists already")]
    TagExists,
    #[error("the model is deleted; restore it first")]
    ModelDeleted,
    #[error("the model is not deleted")]
    ModelNotDeleted,
    #[error("{0}")]
    BadRequest(&'static str, String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl CatalogError {
    pub(crate) fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn into_problem(self) -> Problem {
        let msg = self.to_string();
        match self {
            Self::Validation(errors) => Problem::validation(errors),
            Self::NotFound(what) => Problem::not_found(what),
            Self::ModelExists => Problem::conflict("model_exists", msg),
            Self::TagExists => Problem::conflict("tag_exists", msg),
            Self::ModelDeleted => Problem::conflict("model_deleted", msg),
            Self::ModelNotDeleted => Problem::conflict("model_not_deleted", msg),
            Self::BadRequest(code, _) => Problem::bad_request(code, msg),
            Self::Database(e) => kit::db::problem(&e),
        }
    }
}
