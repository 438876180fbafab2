//! The repository over HTTP(S): `GET metadata/FILE` and `GET targets/FILE`, plain files
//! from the publish directory, readable by any TUF client. No authentication: TUF
//! metadata is public and verifies itself; nothing private is in the repository. Names
//! are flat (`[A-Za-z0-9._-]`, not starting with a dot), so no path leaves the directory.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::publish::BootRepository;

/// `metadata/{file}` and `targets/{file}`; nest them where the repository is served.
pub fn routes(repo: BootRepository) -> Router {
    metadata_routes(repo.clone()).merge(
        Router::new()
            .route("/targets/{file}", get(target))
            .with_state(repo),
    )
}

/// `metadata/{file}` alone.
pub fn metadata_routes(repo: BootRepository) -> Router {
    Router::new()
        .route("/metadata/{file}", get(metadata))
        .with_state(repo)
}

async fn metadata(State(repo): State<BootRepository>, Path(file): Path<String>) -> Response {
    send(repo.metadata_dir(), &file, "application/json").await
}

async fn target(State(repo): State<BootRepository>, Path(file): Path<String>) -> Response {
    send(repo.targets_dir(), &file, "application/octet-stream").await
}

fn flat_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

async fn send(dir: PathBuf, file: &str, content_type: &'static str) -> Response {
    if !flat_name(file) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = dir.join(file);
    let Ok(f) = tokio::fs::File::open(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(meta) = f.metadata().await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !meta.is_file() {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        // Large reads: a kernel goes out in a few hundred chunks, not tens of thousands.
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024)),
    )
        .into_response()
}
