//! Long command-line work shows a progress bar on stderr when that is a terminal (a
//! pseudo-terminal made by util-linux's `script` here), and nothing at all for pipes and scripts.

use std::process::Command;

const PEERIX: &str = env!("CARGO_BIN_EXE_peerix");

#[test]
fn peerix_cid_draws_a_bar_on_a_terminal_only() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("large");
    std::fs::write(&file, vec![7u8; 48 << 20]).unwrap();

    // Piped: the CID alone, not a byte on stderr.
    let piped = Command::new(PEERIX).arg("cid").arg(&file).output().unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let cid = String::from_utf8(piped.stdout).unwrap().trim().to_owned();

    // On a terminal: the bar, with the file's size, then the same CID.
    let typescript = dir.path().join("typescript");
    let command = format!("{PEERIX} cid {}", file.display());
    let on_a_terminal = Command::new("script")
        .args(["-q", "-e", "-c", &command])
        .arg(&typescript)
        .output()
        .expect("util-linux's script is installed");
    assert!(on_a_terminal.status.success());
    let screen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(screen.contains("hashing"), "{screen}");
    assert!(screen.contains("48.00 MiB"), "{screen}");
    assert!(screen.contains(&cid), "{screen}");
}
