//! The store database as Nix leaves it: absent at first, written to while Peerix reads.

mod common;

use std::time::{Duration, Instant};

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;

use common::{hash_part, nix, run, running_as_root, stdout_text, ChrootStore, Fixture, Peerix};

#[test]
fn a_root_without_database_is_empty_until_one_appears() {
    let f = Fixture::get();
    let store = ChrootStore::empty();
    let peerix = Peerix::serve(store.root(), &[]);
    let narinfo = format!("/{}.narinfo", hash_part(&f.lib));
    assert_eq!(peerix.get(&narinfo).0, 404);

    store.copy_in(&[&f.lib]);
    assert_eq!(peerix.get(&narinfo).0, 200);
}

#[test]
fn reads_stay_correct_while_nix_writes() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.app]);
    let peerix = Peerix::serve(store.root(), &[]);
    let narinfo = format!("/{}.narinfo", hash_part(&f.app));

    let files = tempfile::TempDir::new().unwrap();
    let writer = {
        let url = store.url();
        let dir = files.path().to_owned();
        std::thread::spawn(move || {
            (0..20)
                .map(|i| {
                    let file = dir.join(format!("written-{i}"));
                    std::fs::write(&file, format!("{i} {:?}", Instant::now())).unwrap();
                    stdout_text(&run(nix("nix-store", &dir)
                        .args(["--store", &url, "--add"])
                        .arg(&file)))
                })
                .collect::<Vec<_>>()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reads = 0;
    while !writer.is_finished() && Instant::now() < deadline {
        let (status, body) = peerix.get(&narinfo);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        reads += 1;
    }
    let added = writer.join().unwrap();
    assert!(reads > 0);
    for path in added {
        assert_eq!(
            peerix.get(&format!("/{}.narinfo", hash_part(&path))).0,
            200,
            "{path}"
        );
    }
}

/// Without write permission SQLite cannot create the WAL files that Nix removes when it closes the
/// database; Peerix must still read it, and see paths that Nix adds later.
#[test]
fn an_unprivileged_user_reads_an_idle_database() {
    if !running_as_root() {
        eprintln!("skipped: needs root to switch to the nobody user");
        return;
    }
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.app]);
    fs::set_permissions(store.root(), Permissions::from_mode(0o755)).unwrap();
    let db_dir = store.root().join("nix/var/nix/db");
    assert!(
        !db_dir.join("db.sqlite-wal").exists(),
        "Nix left its WAL behind"
    );
    let peerix = Peerix::serve_as_nobody(store.root());

    let (status, body) = peerix.get(&format!("/{}.narinfo", hash_part(&f.app)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).unwrap();
    let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
    let (status, nar) = peerix.get(&format!("/{url}"));
    assert_eq!(status, 200);
    assert!(nar == store.dump(&f.app));
    assert_eq!(
        peerix.get(&format!("/{}.narinfo", hash_part(&f.lib))).0,
        200
    );

    store.copy_in(&[&f.big]);
    assert_eq!(
        peerix.get(&format!("/{}.narinfo", hash_part(&f.big))).0,
        200
    );
}
