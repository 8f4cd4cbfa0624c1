//! Notes and feedback on replies: a thumbs up or down with an optional comment (one per reply,
//! changed in place), and notes kept with a reply.

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{CsrfOnly, act};
use crate::AppState;
use crate::extract::{Form, Path, blank_as_none};
use crate::session::Visitor;

#[derive(Deserialize)]
pub struct Note {
    pub id: Uuid,
    pub message_id: Uuid,
    pub text: String,
}

#[derive(Deserialize)]
pub struct Feedback {
    pub id: Uuid,
    pub message_id: Uuid,
    /// `up` or `down`.
    pub rating: String,
    pub comment: Option<String>,
}

#[derive(Deserialize)]
pub struct FeedbackForm {
    csrf: String,
    rating: Rating,
    #[serde(default)]
    comment: String,
    /// The feedback given before, which this changes.
    #[serde(default, deserialize_with = "blank_as_none")]
    feedback: Option<Uuid>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Rating {
    Up,
    Down,
}

/// Rates a reply, or changes the rating given before.
pub async fn feedback(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((id, message)): Path<(Uuid, Uuid)>,
    Form(form): Form<FeedbackForm>,
) -> Response {
    let back = format!("/chat/{id}#m-{message}");
    let comment = form.comment.trim();
    match form.feedback {
        Some(given) => {
            let body = json!({"rating": form.rating, "comment": comment});
            act(&s, visitor, &form.csrf, Method::PATCH, &format!("/api/feedback/{given}"), Some(&body), &back).await
        }
        None => {
            let mut body = json!({"message_id": message, "rating": form.rating});
            if !comment.is_empty() {
                body["comment"] = json!(comment);
            }
            act(&s, visitor, &form.csrf, Method::POST, "/api/feedback", Some(&body), &back).await
        }
    }
}

#[derive(Deserialize)]
pub struct NoteForm {
    csrf: String,
    text: String,
    /// The reply's length in characters: a note from the page is about the whole reply.
    end: i64,
}

pub async fn note(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((id, message)): Path<(Uuid, Uuid)>,
    Form(form): Form<NoteForm>,
) -> Response {
    let back = format!("/chat/{id}#m-{message}");
    let body = json!({"message_id": message, "start": 0, "end": form.end, "text": form.text.trim()});
    act(&s, visitor, &form.csrf, Method::POST, "/api/notes", Some(&body), &back).await
}

pub async fn delete_note(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((id, note)): Path<(Uuid, Uuid)>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    act(&s, visitor, &form.csrf, Method::DELETE, &format!("/api/notes/{note}"), None, &format!("/chat/{id}")).await
}
