//! Every way a conversation operation can fail, and the problem (status and stable `code`) each
//! one is.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("invalid fields")]
    Validation(Vec<FieldError>),
    /// Also for objects that exist but belong to someone else: their existence is not disclosed.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("a folder with this name already exists here")]
    FolderNameTaken,
    #[error("the root folder cannot be renamed, moved or deleted")]
    RootFolder,
    #[error("a folder cannot be moved into itself or one of its subfolders")]
    FolderCycle,
    #[error("the folder is not empty; delete it with `recursive=true` to delete what it holds")]
    FolderNotEmpty,
    #[error("a reply is already being generated in this conversation; stop it or wait")]
    GenerationInProgress,
    #[error("feedback on this message exists already; change it instead")]
    FeedbackExists,
    /// An upload that cannot be taken, or a stored file that cannot be read.
    #[error(transparent)]
    Document(#[from] ollamanet_documents::DocumentError),
    #[error("the document is being processed; wait for it to finish")]
    DocumentBusy,
    /// A per-user quota (`[conversation.quotas]`) that keeping one more thing would pass: 409
    /// with the quota's code.
    #[error("{1}")]
    Quota(&'static str, String),
    #[error("you are following {0} replies at once already, the most allowed; close one first")]
    TooManyStreams(usize),
    #[error("the server is shutting down; retry shortly")]
    ShuttingDown,
    #[error("the model could not answer: {0}")]
    Inference(String),
    #[error("the inference service is not reachable")]
    InferenceUnavailable,
    #[error("{0}")]
    BadRequest(&'static str, String),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database: {0}")]
    Connect(#[from] kit::db::DbError),
    #[error("configuration: {0}")]
    Config(String),
}

impl ConversationError {
    pub(crate) fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        ConversationError::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn into_problem(self) -> Problem {
        let msg = self.to_string();
        match self {
            ConversationError::Validation(errors) => Problem::validation(errors),
            ConversationError::NotFound(what) => Problem::not_found(what),
            ConversationError::FolderNameTaken => Problem::conflict("folder_name_taken", msg),
            ConversationError::RootFolder => Problem::conflict("root_folder", msg),
            ConversationError::FolderCycle => Problem::conflict("folder_cycle", msg),
            ConversationError::FolderNotEmpty => Problem::conflict("folder_not_empty", msg),
            ConversationError::GenerationInProgress => Problem::conflict("generation_in_progress", msg),
            ConversationError::FeedbackExists => Problem::conflict("feedback_exists", msg),
            ConversationError::Document(e) => document_problem(&e),
            ConversationError::DocumentBusy => Problem::conflict("document_busy", msg),
            ConversationError::Quota(code, _) => Problem::conflict(code, msg),
            ConversationError::TooManyStreams(_) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", msg).with_retry_after(1)
            }
            ConversationError::ShuttingDown => Problem::unavailable("shutting_down", msg),
            ConversationError::Inference(_) => Problem::new(StatusCode::BAD_GATEWAY, "inference_failed", msg),
            ConversationError::InferenceUnavailable => Problem::unavailable("inference_unavailable", msg),
            ConversationError::BadRequest(code, _) => Problem::bad_request(code, msg),
            ConversationError::Unavailable(_) => Problem::unavailable("bus_unavailable", msg),
            ConversationError::Database(e) => kit::db::problem(&e),
            ConversationError::Connect(e) => {
                tracing::error!(error = %e, "database connection failed");
                Problem::unavailable("database_unavailable", "the database is not reachable; retry shortly")
            }
            ConversationError::Config(_) => {
                tracing::error!(error = %msg, "conversation service misconfigured");
                Problem::internal()
            }
        }
    }
}

/// The upload's faults are the uploader's to fix (4xx, the message as `detail`); a failing disk is
/// the server's.
fn document_problem(e: &ollamanet_documents::DocumentError) -> Problem {
    use ollamanet_documents::DocumentError as E;
    let status = match e {
        E::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        E::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        E::Empty | E::Corrupt(_) | E::Suspicious(_) | E::TooComplex(_) | E::NoText => StatusCode::UNPROCESSABLE_ENTITY,
        E::InvalidDigest | E::Io(_) => {
            tracing::error!(error = %e, "document storage failed");
            return Problem::internal();
        }
    };
    Problem::new(status, e.code(), e.to_string())
}

impl IntoResponse for ConversationError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}
