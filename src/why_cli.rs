//! `peerix why HASH|STORE_PATH`: asks a running `peerix serve` (`GET /why/{hash}`) and prints its
//! answer as a verdict line and indented details, or as JSON.

use std::io::Read;

use serde_json::Value;

use crate::cli::WhyArgs;
use crate::kubo_rpc::percent_encode;

/// An answer is a few KiB. (It is read from memory and the store database, so it comes at
/// once or not at all: the agent's deadline is plenty.)
const MAX_ANSWER: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WhyError {
    #[error("cannot reach Peerix at {api}: {error} (is `peerix serve` running? see --api)")]
    Unreachable { api: String, error: String },
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer from {api}: {error}")]
    Unexpected { api: String, error: String },
}

pub fn run(args: &WhyArgs) -> Result<(), WhyError> {
    let api = args.api.api.trim_end_matches('/');
    let (status, body) = get(api, &args.target)?;
    let unexpected = |error: String| WhyError::Unexpected {
        api: api.to_owned(),
        error,
    };
    let answer: Value = serde_json::from_str(&body)
        .map_err(|e| unexpected(format!("HTTP {status}, not JSON: {e}")))?;
    if status != 200 {
        let error = answer["error"].as_str().unwrap_or(&body).to_owned();
        return Err(if status == 400 {
            WhyError::Refused(error)
        } else {
            unexpected(format!("HTTP {status}: {error}"))
        });
    }
    if args.json {
        println!("{answer}");
        return Ok(());
    }
    let summary = answer["summary"].as_str().unwrap_or_default();
    println!("{}: {summary}", answer["verdict"].as_str().unwrap_or("?"));
    for line in answer["details"].as_array().into_iter().flatten() {
        println!("  {}", line.as_str().unwrap_or_default());
    }
    Ok(())
}

/// `GET {api}/why/{target}`: the status and the body.
fn get(api: &str, target: &str) -> Result<(u16, String), WhyError> {
    let agent = crate::status_cli::agent();
    let url = format!("{api}/why/{}", percent_encode(target));
    let unreachable = |error: String| WhyError::Unreachable {
        api: api.to_owned(),
        error,
    };
    let response = agent
        .get(&url)
        .call()
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let mut body = String::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_string(&mut body)
        .map_err(|e| unreachable(e.to_string()))?;
    Ok((status, body))
}
