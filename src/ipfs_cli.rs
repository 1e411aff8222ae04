//! `peerix ipfs ...`: a client of the kubo-style RPC of a running `peerix serve`.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde_json::json;
use thiserror::Error;

use crate::cli::{IpfsArgs, IpfsCommand};
use crate::kubo_rpc::{KuboError, KuboRpc};
use crate::progress;

#[derive(Debug, Error)]
pub enum IpfsCliError {
    #[error(transparent)]
    Rpc(#[from] KuboError),
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cat {cid}: {source}")]
    Output { cid: String, source: io::Error },
}

pub fn run(args: &IpfsArgs) -> Result<(), IpfsCliError> {
    let rpc = KuboRpc::new(&args.api);
    match &args.command {
        IpfsCommand::Id => {
            let id = rpc.id()?;
            let out = json!({"peer_id": id["ID"], "multiaddrs": id["Addresses"]});
            println!("{out}");
        }
        IpfsCommand::Connect { multiaddr } => {
            for line in rpc.connect(multiaddr)? {
                println!("{line}");
            }
        }
        IpfsCommand::Add { file } => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let content = std::fs::File::open(file).map_err(|source| IpfsCliError::Open {
                path: file.clone(),
                source,
            })?;
            let size = content.metadata().ok().map(|m| m.len());
            let (cid, _) = rpc.add(&name, progress::reading(content, size, "adding"))?;
            println!("{cid}");
        }
        IpfsCommand::Providers { cid } => {
            for peer in rpc.find_providers(cid)? {
                println!("{peer}");
            }
        }
        IpfsCommand::Peers => {
            for (peer, addr) in rpc.peers()? {
                println!("{peer} {addr}");
            }
        }
        IpfsCommand::Announce { action } => {
            rpc.call_json("peerix/announce", &[("arg", action)])?;
        }
        IpfsCommand::Status => {
            println!("{}", rpc.call_json("peerix/status", &[])?);
        }
        IpfsCommand::Cat { cid } => {
            let mut body = progress::reading(rpc.cat(cid)?, None, "fetching");
            let mut stdout = io::stdout().lock();
            let output = |source| IpfsCliError::Output {
                cid: cid.clone(),
                source,
            };
            copy_in_large_reads(&mut body, &mut stdout).map_err(output)?;
            stdout.flush().map_err(output)?;
        }
    }
    Ok(())
}

/// Like `io::copy`, in reads of up to 1 MiB: with its 8 KiB, a 256 MiB file took 32,768 reads
/// of the HTTP body and as many writes to stdout.
fn copy_in_large_reads(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
