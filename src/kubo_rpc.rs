//! A client of kubo's HTTP RPC (`/api/v0/...`): what `peerix ipfs` uses to drive a running
//! `peerix serve`, and what `peerix serve --ipfs-api` uses to drive a running kubo.

use std::io::{self, Read};
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

/// What can go wrong with a call to kubo's RPC.
#[derive(Debug, Error)]
pub enum KuboError {
    #[error("cannot reach {base}: {source}")]
    Unreachable { base: String, source: ureq::Error },
    #[error("{command}: {message}")]
    Refused { command: String, message: String },
    #[error("{command}: {source}")]
    Read { command: String, source: io::Error },
    #[error("{command}: bad JSON from the RPC: {source}")]
    Json {
        command: String,
        source: serde_json::Error,
    },
    #[error("add: the answer has no Hash")]
    NoHash,
    #[error("cannot read what to add: {0}")]
    Upload(io::Error),
}

fn read_error(command: &str) -> impl FnOnce(io::Error) -> KuboError + '_ {
    move |source| KuboError::Read {
        command: command.to_owned(),
        source,
    }
}

#[derive(Clone)]
pub struct KuboRpc {
    base: String,
    agent: ureq::Agent,
}

pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse_json(command: &str, mut body: impl Read) -> Result<Value, KuboError> {
    let mut text = String::new();
    body.read_to_string(&mut text)
        .map_err(read_error(command))?;
    serde_json::from_str(&text).map_err(|source| KuboError::Json {
        command: command.to_owned(),
        source,
    })
}

/// The last file `add` reports: its answer is a stream of JSON objects, one a line, where
/// progress lines have no `Hash`.
fn last_added(text: &str) -> Result<Value, KuboError> {
    let mut added = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).map_err(|source| KuboError::Json {
            command: "add".to_owned(),
            source,
        })?;
        if value.get("Hash").is_some() {
            added = Some(value);
        }
    }
    added.ok_or(KuboError::NoHash)
}

/// The peer ids in a stream of kubo query events (one JSON object a line).
fn provider_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|event| event["Type"] == 4)
        .flat_map(|event| {
            let responses = event["Responses"].as_array().cloned().unwrap_or_default();
            responses
                .into_iter()
                .filter_map(|r| r["ID"].as_str().map(str::to_owned))
        })
        .collect()
}

impl KuboRpc {
    /// A client of the RPC at `base` (e.g. `http://127.0.0.1:5001`).
    pub fn new(base: &str) -> Self {
        // RPC errors arrive as JSON bodies with non-2xx statuses: read them, don't raise.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, command: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}/api/v0/{command}", self.base);
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{key}={}", percent_encode(value)));
        }
        url
    }

    /// POSTs a command; returns the response body, or the RPC's error message.
    pub fn call(&self, command: &str, query: &[(&str, &str)]) -> Result<impl Read, KuboError> {
        let response = self
            .agent
            .post(&self.url(command, query))
            .send_empty()
            .map_err(|source| self.unreachable(source))?;
        Self::body_or_error(command, response)
    }

    fn unreachable(&self, source: ureq::Error) -> KuboError {
        KuboError::Unreachable {
            base: self.base.clone(),
            source,
        }
    }

    fn body_or_error(
        command: &str,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<impl Read, KuboError> {
        let status = response.status();
        let body = response.into_body().into_reader();
        if status.is_success() {
            return Ok(body);
        }
        let mut text = String::new();
        let _ = body.take(64 << 10).read_to_string(&mut text);
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["Message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        Err(KuboError::Refused {
            command: command.to_owned(),
            message,
        })
    }

    pub fn call_json(&self, command: &str, query: &[(&str, &str)]) -> Result<Value, KuboError> {
        parse_json(command, self.call(command, query)?)
    }

    /// `id`: the node's peer id and addresses, in kubo's shape.
    pub fn id(&self) -> Result<Value, KuboError> {
        self.call_json("id", &[])
    }

    /// Connects the node to `addr`; returns the lines kubo reports.
    pub fn connect(&self, addr: &str) -> Result<Vec<String>, KuboError> {
        let answer = self.call_json("swarm/connect", &[("arg", addr)])?;
        Ok(answer["Strings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect())
    }

    /// Connected peers as `(peer id, address)`.
    pub fn peers(&self) -> Result<Vec<(String, String)>, KuboError> {
        let answer = self.call_json("swarm/peers", &[])?;
        let field = |p: &Value, k: &str| p[k].as_str().unwrap_or_default().to_owned();
        Ok(answer["Peers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (field(p, "Peer"), field(p, "Addr")))
            .collect())
    }

    /// Uploads `content` as kubo's clients do (one multipart form part), pinned, as CIDv1 with
    /// raw leaves; returns the CID and the size kubo reports.
    pub fn add(
        &self,
        name: &str,
        content: impl Read + Send + 'static,
    ) -> Result<(String, u64), KuboError> {
        self.add_within(name, content, None)
    }

    /// [`KuboRpc::add`], given up after `deadline` (the upload and kubo's answer together).
    pub fn add_within(
        &self,
        name: &str,
        content: impl Read + Send + 'static,
        deadline: Option<Duration>,
    ) -> Result<(String, u64), KuboError> {
        let boundary = format!("peerix-{}", std::process::id());
        // kubo percent-decodes file names, as its own clients encode them.
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            percent_encode(name)
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let body = io::Cursor::new(head)
            .chain(content)
            .chain(io::Cursor::new(tail));
        let response = self
            .agent
            .post(&self.url(
                "add",
                &[
                    ("pin", "true"),
                    ("cid-version", "1"),
                    ("raw-leaves", "true"),
                ],
            ))
            .config()
            .timeout_global(deadline)
            .build()
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(ureq::SendBody::from_owned_reader(body))
            .map_err(|source| self.unreachable(source))?;
        let mut text = String::new();
        Self::body_or_error("add", response)?
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(read_error("add"))?;
        let answer = last_added(&text)?;
        let cid = answer["Hash"].as_str().ok_or(KuboError::NoHash)?.to_owned();
        let size = answer["Size"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        Ok((cid, size))
    }

    /// The content of `cid`, streamed.
    pub fn cat(&self, cid: &str) -> Result<impl Read, KuboError> {
        self.call("cat", &[("arg", cid)])
    }

    /// The content of `cid` from byte `offset` on, streamed: kubo must begin its answer within
    /// `first_byte` and send all of it within `whole`.
    pub fn cat_from(
        &self,
        cid: &str,
        offset: u64,
        first_byte: Duration,
        whole: Duration,
    ) -> Result<impl Read, KuboError> {
        let offset = offset.to_string();
        let response = self
            .agent
            .post(&self.url("cat", &[("arg", cid), ("offset", &offset)]))
            .config()
            .timeout_recv_response(Some(first_byte))
            .timeout_global(Some(whole))
            .build()
            .send_empty()
            .map_err(|source| self.unreachable(source))?;
        Self::body_or_error("cat", response)
    }

    pub fn block(&self, cid: &str) -> Result<Vec<u8>, KuboError> {
        let mut block = Vec::new();
        // A block is at most 2 MiB; a longer answer is not one.
        self.call("block/get", &[("arg", cid)])?
            .take(4 << 20)
            .read_to_end(&mut block)
            .map_err(read_error("block/get"))?;
        Ok(block)
    }

    /// Peer ids of the providers of `cid`.
    pub fn find_providers(&self, cid: &str) -> Result<Vec<String>, KuboError> {
        let mut text = String::new();
        self.call("routing/findprovs", &[("arg", cid)])?
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(read_error("routing/findprovs"))?;
        Ok(provider_ids(&text))
    }

    /// Unpins `cid`: kubo may then collect its blocks.
    pub fn unpin(&self, cid: &str) -> Result<(), KuboError> {
        self.call_json("pin/rm", &[("arg", cid)]).map(drop)
    }

    pub fn provide(&self, cid: &str) -> Result<(), KuboError> {
        let mut ignored = Vec::new();
        self.call("routing/provide", &[("arg", cid)])?
            .take(16 << 20)
            .read_to_end(&mut ignored)
            .map_err(read_error("routing/provide"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_provider_events() {
        let text = "{\"Type\":4,\"Responses\":[{\"ID\":\"A\"},{\"ID\":\"B\"}]}\n\
                    {\"Type\":0,\"Responses\":[{\"ID\":\"C\"}]}\nnot json\n";
        assert_eq!(provider_ids(text), ["A", "B"]);
    }

    #[test]
    fn reads_the_last_added_file() {
        let text = "{\"Name\":\"f\",\"Bytes\":262144}\n\
                    {\"Name\":\"f\",\"Hash\":\"bafy\",\"Size\":\"9\"}\n";
        assert_eq!(last_added(text).unwrap()["Hash"], "bafy");
        assert!(last_added("{\"Name\":\"f\",\"Bytes\":1}\n").is_err());
    }

    #[test]
    fn encodes_arguments() {
        let rpc = KuboRpc::new("http://127.0.0.1:5001/");
        assert_eq!(
            rpc.url("cat", &[("arg", "/ip4/1.2.3.4 x")]),
            "http://127.0.0.1:5001/api/v0/cat?arg=%2Fip4%2F1.2.3.4%20x"
        );
    }
}
