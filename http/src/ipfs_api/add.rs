//! `add`: kubo's multipart upload, one JSON line per file, in the one layout Peerix builds.

use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, RawQuery, State};
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
/// and UnixFS metadata (mode, mtime) are refused.
pub(super) async fn add<A: IpfsApi>(
    State(api): State<Arc<A>>,
    RawQuery(query): RawQuery,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut form = form.map_err(|e| ApiError::BadArgument(e.body_text()))?;
    let added = add_files(&*api, query.as_deref().unwrap_or_default(), &mut form).await;
    if added.is_err() {
        // A client still sending its upload would see the connection closed, not the error.
        while let Ok(Some(mut field)) = form.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    }
    Ok(ndjson(added?))
}

/// Publishes every file part of `form`; returns one `add` answer line each.
async fn add_files<A: IpfsApi>(
    api: &A,
    query: &str,
    form: &mut Multipart,
) -> Result<Vec<serde_json::Value>, ApiError> {
    check_add_options(&url_params(query))?;
    let bad = |e: axum::extract::multipart::MultipartError| ApiError::BadArgument(e.body_text());
    let mut added = Vec::new();
    while let Some(field) = form.next_field().await.map_err(bad)? {
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

/// Publishes one multipart part; returns what [`IpfsApi::add`] does.
async fn add_part<A: IpfsApi>(
    api: &A,
    field: axum::extract::multipart::Field<'_>,
) -> Result<(String, u64), ApiError> {
    // The part borrows the request, so it is fed through a channel to the 'static stream `add` takes.
    let (chunks, received) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let feed = async move {
        let mut field = field;
        loop {
            let next = match field.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => return,
                Err(e) => Err(std::io::Error::other(e.body_text())),
            };
            if chunks.send(next).await.is_err() {
                return;
            }
        }
    };
    let content = futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|chunk| (chunk, received))
    });
    let ((), added) = tokio::join!(feed, api.add(Box::pin(content)));
    added
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
