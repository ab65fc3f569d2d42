//! The web UI, built from `ui/` by the build script and embedded in the binary: files by path, and
//! `index.html` for every other path that is not the API's (the UI routes in the browser).

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, bytes)| *bytes)
}

/// A built file, or the UI's `index.html`; `/api/…` paths that no route took are the API's 404.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return crate::api::ApiError::not_found("no such API path").into_response();
    }
    // Not the UI's either: the metrics have their own listener, and a page here would look like them.
    if path == "metrics" {
        return crate::api::ApiError::not_found("the metrics are served on the metrics port").into_response();
    }
    if let Some(bytes) = asset(path).filter(|_| !path.is_empty()) {
        // Vite names built files by their content hash: they never change under one name.
        let cache =
            if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        return (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type(path))),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            bytes,
        )
            .into_response();
    }
    if path.starts_with("assets/") {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    }
    match asset("index.html") {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "the web UI is not built").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn index_answers_ui_routes_and_the_api_keeps_its_404() {
        let page = serve("/applications/web".parse().unwrap()).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let api = serve("/api/v1/nothing".parse().unwrap()).await;
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(api.headers()[header::CONTENT_TYPE], "application/json");
        let missing = serve("/assets/gone.js".parse().unwrap()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(ASSETS.iter().any(|(p, _)| *p == "index.html"));
    }
}
