//! The old program's routes that users' scripts call answer as they did: `/dashboard-stats`
//! (the status document), `/scan-status` (the scan's progress), `POST /batch-narinfo` (many
//! narinfos at once, at most 100), each local-only like `/status`.

mod common;

use std::time::Duration;

use common::{curl, hash_part, ChrootStore, Fixture, Peerix};

#[test]
fn the_old_status_and_batch_routes_answer_for_scripts() {
    let f = Fixture::get();
    let store = ChrootStore::with_paths(&[&f.lib]);
    let node = Peerix::serve(store.root(), &[]);
    node.wait_for_narinfo(&f.lib, Duration::from_secs(20));
    let url = |route: &str| format!("{}{route}", node.url());

    let stats = curl(&url("/dashboard-stats"), &[]);
    assert_eq!(stats.status, 200);
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert!(stats["node"]["peer_id"].is_string(), "{stats}");
    let scan = curl(&url("/scan-status"), &[]);
    let scan: serde_json::Value = serde_json::from_slice(&scan.body).unwrap();
    assert!(scan["paths_total"].is_number(), "{scan}");

    let absent = "0123456789abcdfghijklmnpqrsvwxyz";
    let body = format!(r#"{{"hashes": ["{}", "{absent}"]}}"#, hash_part(&f.lib));
    let batch = curl(
        &url("/batch-narinfo"),
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
        ],
    );
    assert_eq!(batch.status, 200);
    let answers: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
    let narinfo = answers[hash_part(&f.lib)].as_str().unwrap();
    assert!(
        narinfo.contains(&format!("StorePath: {}", f.lib)),
        "{narinfo}"
    );
    assert_eq!(answers[absent], serde_json::Value::Null);

    let many = vec![format!("\"{absent}\""); 101].join(",");
    let too_many = curl(
        &url("/batch-narinfo"),
        &[
            "-X",
            "POST",
            "--data",
            &format!(r#"{{"hashes": [{many}]}}"#),
        ],
    );
    assert_eq!(too_many.status, 413);
    let bad = curl(
        &url("/batch-narinfo"),
        &["-X", "POST", "--data", "{\"hashes\": [\"x\"]}"],
    );
    assert_eq!(bad.status, 400);
    // A web page may not ask.
    let from_a_page = curl(
        &url("/batch-narinfo"),
        &[
            "-X",
            "POST",
            "-H",
            "Origin: http://evil.example",
            "--data",
            &body,
        ],
    );
    assert_eq!(from_a_page.status, 403);
    let from_a_page = curl(&url("/scan-status"), &["-H", "Origin: http://evil.example"]);
    assert_eq!(from_a_page.status, 403);
}
