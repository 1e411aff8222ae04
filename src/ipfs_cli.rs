//! `peerix ipfs ...`: a client of the kubo-style RPC of a running `peerix serve`.

use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::cli::{IpfsArgs, IpfsCommand};

fn agent() -> ureq::Agent {
    // RPC errors arrive as kubo's JSON bodies with non-2xx statuses: read them, don't raise.
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// POSTs an RPC command; returns the response body reader, or kubo's error message.
fn call(args: &IpfsArgs, command: &str, arg: Option<&str>) -> Result<impl Read, String> {
    let mut url = format!("{}/api/v0/{command}", args.api.trim_end_matches('/'));
    if let Some(arg) = arg {
        url.push_str(&format!("?arg={}", percent_encode(arg)));
    }
    let response = agent()
        .post(&url)
        .send_empty()
        .map_err(|e| format!("cannot reach {}: {e}", args.api))?;
    body_or_error(command, response)
}

fn body_or_error(
    command: &str,
    response: ureq::http::Response<ureq::Body>,
) -> Result<impl Read, String> {
    let status = response.status();
    let mut body = response.into_body().into_reader();
    if status.is_success() {
        return Ok(body);
    }
    let mut text = String::new();
    let _ = body.read_to_string(&mut text);
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["Message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    Err(format!("{command}: {message}"))
}

fn call_json(args: &IpfsArgs, command: &str, arg: Option<&str>) -> Result<Value, String> {
    parse_json(command, call(args, command, arg)?)
}

fn read_json(command: &str, response: ureq::http::Response<ureq::Body>) -> Result<Value, String> {
    parse_json(command, body_or_error(command, response)?)
}

fn parse_json(command: &str, mut body: impl Read) -> Result<Value, String> {
    let mut text = String::new();
    body.read_to_string(&mut text)
        .map_err(|e| format!("{command}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{command}: bad JSON from the node: {e}"))
}

/// Uploads `file` as kubo's clients do: one multipart form part.
fn add(args: &IpfsArgs, file: &Path) -> Result<Value, String> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let content =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let boundary = format!("peerix-{}", std::process::id());
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        name.replace('"', "")
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let body = io::Cursor::new(head)
        .chain(content)
        .chain(io::Cursor::new(tail));
    let url = format!("{}/api/v0/add", args.api.trim_end_matches('/'));
    let response = agent()
        .post(&url)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .send(ureq::SendBody::from_owned_reader(body))
        .map_err(|e| format!("cannot reach {}: {e}", args.api))?;
    read_json("add", response)
}

pub fn run(args: &IpfsArgs) -> Result<(), String> {
    match &args.command {
        IpfsCommand::Id => {
            let id = call_json(args, "id", None)?;
            let out = json!({"peer_id": id["ID"], "multiaddrs": id["Addresses"]});
            println!("{out}");
        }
        IpfsCommand::Connect { multiaddr } => {
            let answer = call_json(args, "swarm/connect", Some(multiaddr))?;
            for line in answer["Strings"].as_array().into_iter().flatten() {
                println!("{}", line.as_str().unwrap_or_default());
            }
        }
        IpfsCommand::Add { file } => {
            let answer = add(args, file)?;
            println!("{}", answer["Hash"].as_str().unwrap_or_default());
        }
        IpfsCommand::Providers { cid } => {
            let mut text = String::new();
            call(args, "routing/findprovs", Some(cid))?
                .read_to_string(&mut text)
                .map_err(|e| format!("providers: {e}"))?;
            for event in text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            {
                for response in event["Responses"].as_array().into_iter().flatten() {
                    println!("{}", response["ID"].as_str().unwrap_or_default());
                }
            }
        }
        IpfsCommand::Peers => {
            let answer = call_json(args, "swarm/peers", None)?;
            for peer in answer["Peers"].as_array().into_iter().flatten() {
                println!(
                    "{} {}",
                    peer["Peer"].as_str().unwrap_or_default(),
                    peer["Addr"].as_str().unwrap_or_default()
                );
            }
        }
        IpfsCommand::Cat { cid } => {
            let mut body = call(args, "cat", Some(cid))?;
            let mut stdout = io::stdout().lock();
            io::copy(&mut body, &mut stdout).map_err(|e| format!("cat {cid}: {e}"))?;
            stdout.flush().map_err(|e| format!("cat {cid}: {e}"))?;
        }
    }
    Ok(())
}
