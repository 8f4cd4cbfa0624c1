//! Shapes every service's API shares: keyset pages, and the OpenAPI descriptions of the errors
//! that kit's extractors produce.

use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, ToSchema};

use crate::problem::Problem;

/// The web page a password-reset link opens: the auth service mails links to it, the web service
/// serves it.
pub const RESET_PASSWORD_PAGE: &str = "/reset";

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;

/// `?limit=&cursor=` of a list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1–100, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size, clamped to the allowed range.
    pub fn limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE))
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `limit + 1`: the extra row, if present, only tells
    /// that another page follows, and the cursor is the last kept row's key.
    pub fn from_rows<R>(mut rows: Vec<R>, limit: i64, cursor: impl Fn(&R) -> String) -> Self
    where
        T: From<R>,
    {
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more { rows.last().map(cursor) } else { None };
        Page { items: rows.into_iter().map(T::from).collect(), next_cursor }
    }
}

/// Errors of every route that takes a JSON body (for `responses(...)` in `#[utoipa::path]`);
/// never constructed: the errors themselves come from [`crate::http::Json`].
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// `malformed_json`: the body is not JSON.
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// `payload_too_large`.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// `unsupported_media_type`: the body is not sent as `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
}

/// Errors of every route that needs a bearer credential; never constructed: the errors come
/// from [`crate::authn::CurrentUser`].
#[derive(IntoResponses)]
pub enum CredentialErrors {
    /// `unauthenticated` (no credential), `invalid_token`, `token_expired`, `token_revoked` (the
    /// user's token version moved on), `invalid_api_key`, `account_disabled`.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// `database_unavailable`: retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Adds the `bearer` security scheme that routes name in `security(("bearer" = []))`.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An access token (JWT) or a personal API key (`onk_…`)."))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_the_extra_row_and_point_past_the_last_kept_one() {
        let page: Page<u32> = Page::from_rows(vec![1u32, 2, 3], 2, |r| r.to_string());
        assert_eq!((page.items, page.next_cursor.as_deref()), (vec![1, 2], Some("2")));
        let last: Page<u32> = Page::from_rows(vec![1u32, 2], 2, |r| r.to_string());
        assert_eq!(last.next_cursor, None);
        assert_eq!(PageQuery { limit: Some(1000), cursor: None }.limit(), 100);
        assert_eq!(PageQuery::default().limit(), 50);
    }
}
