//! `add`: kubo's multipart upload, one JSON line per file, in the one layout Peerix builds.

use std::sync::Arc;

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::args::{flag, percent_decode, url_params};
use super::{ndjson, ApiError, IpfsApi};

/// The one layout Peerix imports files in, kubo's `ipfs add --cid-version=1`.
const ADD_LAYOUT: &str =
    "Peerix adds files only as CIDv1 with raw leaves, sha2-256, 256 KiB chunks and a balanced DAG";

/// Refuses `add` options that ask for another CID or DAG than the one layout Peerix builds, or
/// for what it does not do, rather than silently answering something else. Options that change
/// only the output (`progress`, `quiet`, `stream-channels`...) or concern kubo's repo (`pin`)
/// are accepted.
fn check_add_options(params: &[(String, String)]) -> Result<(), ApiError> {
    for (key, value) in params {
        let supported = match key.as_str() {
            "cid-version" => value == "1",
            "raw-leaves" => flag(key, value)?,
            "hash" => value == "sha2-256",
            "chunker" => value == "size-262144",
            "cid-base" => value == "base32",
            "trickle"
            | "only-hash"
            | "wrap-with-directory"
            | "inline"
            | "preserve-mode"
            | "preserve-mtime" => !flag(key, value)?,
            "mode" | "mtime" | "mtime-nsecs" | "to-files" => false,
            _ => true,
        };
        if !supported {
            let option = if value.is_empty() {
                key.clone()
            } else {
                format!("{key}={value}")
            };
            return Err(ApiError::BadArgument(format!(
                "option \"{option}\" is not supported: {ADD_LAYOUT}"
            )));
        }
    }
    Ok(())
}

/// kubo's `add`: multipart form data, one part a file (kubo-rpc-client names them `file`,
/// `file-1`...); answers one `{"Name", "Hash", "Size"}` line a file. Without `cid-version` the
/// file is still CIDv1, as from a kubo whose `Import.CidVersion` is 1; other layouts, directories
/// and UnixFS metadata (mode, mtime) are refused. A body over `max_size` bytes is refused (413):
/// at once when its `Content-Length` says so, else when the limit is reached.
pub(super) async fn add<A: IpfsApi>(
    State(api): State<Arc<A>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
    max_size: u64,
) -> Result<Response, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_size) {
        return Err(too_large(max_size));
    }
    let mut form = form.map_err(|e| ApiError::BadArgument(e.body_text()))?;
    let added = add_files(&*api, query.as_deref().unwrap_or_default(), &mut form)
        .await
        .map_err(|e| match e {
            ApiError::TooLarge(_) => too_large(max_size),
            other => other,
        });
    if added.is_err() {
        // A client still sending its upload would see the connection closed, not the error.
        // The body limit bounds what is read here.
        while let Ok(Some(mut field)) = form.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    }
    Ok(ndjson(added?))
}

fn too_large(max_size: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "request body larger than {max_size} bytes (peerix serve --max-add-size)"
    ))
}

/// A multipart failure as the client's mistake, or the body limit reached.
fn form_error(e: &MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(e.body_text())
    } else {
        ApiError::BadArgument(e.body_text())
    }
}

/// Publishes every file part of `form`; returns one `add` answer line each.
async fn add_files<A: IpfsApi>(
    api: &A,
    query: &str,
    form: &mut Multipart,
) -> Result<Vec<serde_json::Value>, ApiError> {
    check_add_options(&url_params(query))?;
    let mut added = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| form_error(&e))? {
        // kubo takes any other part as a regular file, whatever its type.
        let content_type = field.content_type().unwrap_or_default();
        if content_type == "application/x-directory"
            || content_type == "application/symlink"
            || content_type.starts_with("multipart/")
        {
            return Err(ApiError::BadArgument(format!(
                "{content_type} parts are not supported: add regular files, one part each"
            )));
        }
        // kubo reads a file's mode and mtime from the part's name (`file?mode=...`).
        if field.name().unwrap_or_default().contains('?') {
            return Err(ApiError::BadArgument(format!(
                "file mode and mtime are not supported: {ADD_LAYOUT}"
            )));
        }
        // Clients percent-encode file names; kubo decodes them and takes them as paths.
        let name = percent_decode(field.file_name().unwrap_or_default());
        let name = name.trim_start_matches('/').to_owned();
        if name.contains('/') {
            return Err(ApiError::BadArgument(format!(
                "{name}: directories are not supported: add files one by one"
            )));
        }
        let (cid, size) = add_part(api, field).await?;
        // kubo names a nameless file by its CID.
        let name = if name.is_empty() { cid.clone() } else { name };
        added.push(json!({"Name": name, "Hash": cid, "Size": size.to_string()}));
    }
    if added.is_empty() {
        return Err(ApiError::BadArgument("no file in the request".to_owned()));
    }
    Ok(added)
}

/// Publishes one multipart part; returns what [`IpfsApi::add`] does, or why the part could not be
/// read (the limit reached, a truncated form).
async fn add_part<A: IpfsApi>(
    api: &A,
    field: axum::extract::multipart::Field<'_>,
) -> Result<(String, u64), ApiError> {
    // The part borrows the request, so it is fed through a channel to the 'static stream `add` takes.
    let (chunks, received) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let feed = async move {
        let mut field = field;
        loop {
            let (next, failure) = match field.chunk().await {
                Ok(Some(chunk)) => (Ok(chunk), None),
                Ok(None) => return None,
                Err(e) => (
                    Err(std::io::Error::other(e.body_text())),
                    Some(form_error(&e)),
                ),
            };
            if chunks.send(next).await.is_err() || failure.is_some() {
                return failure;
            }
        }
    };
    let content = futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|chunk| (chunk, received))
    });
    let (failure, added) = tokio::join!(feed, api.add(Box::pin(content)));
    match failure {
        Some(failure) => Err(failure),
        None => added,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_add_options_for_other_layouts() {
        let check = |query: &str| check_add_options(&url_params(query));
        // What kubo-rpc-client sends by default, and `peerix ipfs add`.
        assert!(check("stream-channels=true&progress=false").is_ok());
        assert!(check("cid-version=1&raw-leaves=true&hash=sha2-256&pin=false").is_ok());
        assert!(check("chunker=size-262144&trickle=false&only-hash=False").is_ok());
        for refused in [
            "cid-version=0",
            "raw-leaves=false",
            "hash=blake2b-256",
            "chunker=rabin",
            "trickle",
            "only-hash=true",
            "wrap-with-directory=TRUE",
            "mtime=1",
        ] {
            let error = check(refused).unwrap_err();
            assert!(matches!(error, ApiError::BadArgument(_)), "{refused}");
        }
        assert!(check("trickle=maybe")
            .unwrap_err()
            .to_string()
            .contains("as bool"));
    }
}
