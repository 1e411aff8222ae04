use super::*;

const NOW: u64 = 1_800_000_000;
const SKEW: u64 = 30;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn hash(c: char) -> StoreHash {
    StoreHash::parse(&c.to_string().repeat(32)).unwrap()
}

fn payloads() -> Vec<WritePayload> {
    vec![
        WritePayload::Announce {
            port: 12304,
            addrs: vec!["/ip4/127.0.0.1/tcp/13304".parse().unwrap()],
        },
        WritePayload::PackagesBatch {
            hashes: vec![hash('a'), hash('b')],
        },
        WritePayload::PackagesDelta {
            added: vec![hash('c')],
            removed: vec![hash('a')],
        },
        WritePayload::Cid {
            hash: hash('a'),
            cid: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
                .parse()
                .unwrap(),
        },
        WritePayload::TransferInit {
            sender: peer_id(&key(1).verifying_key()).unwrap(),
            receiver: peer_id(&key(2).verifying_key()).unwrap(),
            hash: hash('b'),
        },
        WritePayload::Report {
            transfer_id: 7,
            role: Role::Receiver,
            bytes: 1 << 20,
        },
        WritePayload::CidBatch {
            mappings: vec![(
                hash('b'),
                "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
                    .parse()
                    .unwrap(),
            )],
        },
    ]
}

fn signed(payload: WritePayload) -> Vec<u8> {
    let route = payload.route();
    SignedWrite::sign(&key(1), route, payload, NOW, [9; NONCE_LEN])
        .unwrap()
        .to_json()
}

fn verify(body: &[u8], route: &str) -> Result<VerifiedWrite, EnvelopeError> {
    SignedWrite::parse(body)?.verify(route, NOW, SKEW)
}

#[test]
fn every_write_kind_round_trips_and_names_its_signer() {
    for payload in payloads() {
        let route = payload.route();
        let verified = verify(&signed(payload.clone()), route).unwrap();
        assert_eq!(verified.payload, payload);
        assert_eq!(verified.peer, peer_id(&key(1).verifying_key()).unwrap());
        assert_eq!((verified.timestamp, verified.nonce), (NOW, [9; NONCE_LEN]));
    }
}

#[test]
fn peer_id_and_signature_are_libp2p_s() {
    let secret = [5; 32];
    let libp2p_key = libp2p::identity::Keypair::ed25519_from_bytes(secret).unwrap();
    let ours = SigningKey::from_bytes(&secret);
    assert_eq!(
        peer_id(&ours.verifying_key()).unwrap().to_bytes(),
        libp2p_key.public().to_peer_id().to_bytes()
    );
    assert_eq!(
        protobuf_key(&ours.verifying_key()).to_vec(),
        libp2p_key.public().encode_protobuf()
    );
    // ed25519 is deterministic: the node's libp2p key signs the same bytes identically.
    let message = signed_bytes(
        &ours.verifying_key(),
        "/cid",
        NOW,
        &[0; NONCE_LEN],
        &payloads()[3],
    );
    assert_eq!(
        libp2p_key.sign(&message).unwrap(),
        ours.sign(&message).to_bytes()
    );
}

/// Flips one bit of the JSON string value of `field` (a key of the body or of its payload).
fn flip_in_string(body: &[u8], field: &str) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(body).unwrap();
    let target = if value.get(field).is_some() {
        &mut value[field]
    } else {
        &mut value["payload"][field]
    };
    let text = match target {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a[0].as_str().unwrap().to_owned(),
        serde_json::Value::Number(n) => {
            *target = serde_json::json!(n.as_u64().unwrap() ^ 1);
            return serde_json::to_vec(&value).unwrap();
        }
        other => panic!("unexpected {other}"),
    };
    // Change one character to another of the same alphabet class.
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() / 2;
    chars[i] = match chars[i] {
        '0'..='8' | 'a'..='y' | 'A'..='Y' => (chars[i] as u8 + 1) as char,
        _ => '0',
    };
    let changed: String = chars.into_iter().collect();
    match target {
        serde_json::Value::Array(a) => a[0] = changed.into(),
        other => *other = changed.into(),
    }
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn any_changed_field_fails() {
    let cases = [
        (
            payloads()[0].clone(),
            vec!["port", "timestamp", "nonce", "key"],
        ),
        (payloads()[1].clone(), vec!["hashes", "signature"]),
        (payloads()[2].clone(), vec!["added", "removed"]),
        (payloads()[3].clone(), vec!["hash", "cid"]),
        (payloads()[4].clone(), vec!["hash"]),
        (payloads()[5].clone(), vec!["transfer_id", "bytes"]),
    ];
    for (payload, fields) in cases {
        let route = payload.route();
        let body = signed(payload);
        for field in fields {
            let changed = flip_in_string(&body, field);
            assert_ne!(changed, body);
            let result = verify(&changed, route);
            assert!(
                matches!(
                    result,
                    Err(EnvelopeError::BadSignature
                        | EnvelopeError::Malformed(_)
                        | EnvelopeError::UnsupportedKey)
                ),
                "{field}: {result:?}"
            );
        }
    }
    // A mapping of a batch changed to another path.
    let batch = payloads()[6].clone();
    let route = batch.route();
    let mut value: serde_json::Value = serde_json::from_slice(&signed(batch)).unwrap();
    value["payload"]["mappings"][0]["hash"] = hash('c').to_string().into();
    let changed = serde_json::to_vec(&value).unwrap();
    assert_eq!(verify(&changed, route), Err(EnvelopeError::BadSignature));
    // The same write sent to another route (another kind's, or a variant spelling).
    let body = signed(payloads()[3].clone());
    assert!(matches!(
        verify(&body, "/announce"),
        Err(EnvelopeError::WrongRoute { .. })
    ));
    assert!(matches!(
        verify(&body, "/cid/"),
        Err(EnvelopeError::WrongRoute { .. })
    ));
}

#[test]
fn a_signature_fails_under_another_key_and_another_route() {
    let payload = payloads()[1].clone();
    let mine =
        SignedWrite::sign(&key(1), "/packages/batch", payload.clone(), NOW, [1; 16]).unwrap();
    let mut theirs = mine.clone();
    theirs.key = key(2).verifying_key();
    theirs.peer = peer_id(&theirs.key).unwrap();
    let body = theirs.to_json();
    assert_eq!(
        verify(&body, "/packages/batch"),
        Err(EnvelopeError::BadSignature)
    );
    // Signed for one route, presented under another whose payload check would pass.
    let elsewhere = SignedWrite::sign(&key(1), "/elsewhere", payload, NOW, [1; 16]).unwrap();
    assert_eq!(
        verify(&elsewhere.to_json(), "/packages/batch"),
        Err(EnvelopeError::BadSignature)
    );
}

#[test]
fn timestamps_beyond_the_skew_fail() {
    let at = |timestamp| {
        let payload = payloads()[0].clone();
        SignedWrite::sign(&key(1), "/announce", payload, timestamp, [3; 16])
            .unwrap()
            .verify("/announce", NOW, SKEW)
    };
    assert!(at(NOW - SKEW).is_ok());
    assert!(at(NOW + SKEW).is_ok());
    assert!(matches!(
        at(NOW - SKEW - 1),
        Err(EnvelopeError::Stale { .. })
    ));
    assert!(matches!(
        at(NOW + SKEW + 1),
        Err(EnvelopeError::FromTheFuture { .. })
    ));
    assert!(matches!(at(0), Err(EnvelopeError::Stale { .. })));
    assert!(matches!(
        at(u64::MAX),
        Err(EnvelopeError::FromTheFuture { .. })
    ));
}

#[test]
fn oversized_and_malformed_writes_fail_cleanly() {
    let many = vec![hash('a'); MAX_HASHES + 1];
    assert!(matches!(
        SignedWrite::sign(
            &key(1),
            "/packages/batch",
            WritePayload::PackagesBatch {
                hashes: many.clone()
            },
            NOW,
            [0; 16]
        ),
        Err(EnvelopeError::TooMany { .. })
    ));
    // A full batch fits the body limit; one hash more is refused after parsing.
    let full = SignedWrite {
        payload: WritePayload::PackagesBatch {
            hashes: many[..MAX_HASHES].to_vec(),
        },
        ..SignedWrite::sign(&key(1), "/x", payloads()[1].clone(), NOW, [0; 16]).unwrap()
    };
    assert!(full.to_json().len() <= MAX_BODY);
    let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let cids = SignedWrite {
        payload: WritePayload::CidBatch {
            mappings: vec![(hash('a'), cid.parse().unwrap()); MAX_CIDS],
        },
        ..SignedWrite::sign(&key(1), "/x", payloads()[1].clone(), NOW, [0; 16]).unwrap()
    };
    assert!(cids.to_json().len() <= MAX_BODY);
    let over = SignedWrite {
        payload: WritePayload::PackagesDelta {
            added: many[..MAX_HASHES / 2 + 1].to_vec(),
            removed: many[..MAX_HASHES / 2].to_vec(),
        },
        ..full.clone()
    };
    assert!(matches!(
        SignedWrite::parse(&over.to_json()),
        Err(EnvelopeError::TooMany { .. })
    ));
    assert_eq!(
        SignedWrite::parse(&vec![b' '; MAX_BODY + 1]),
        Err(EnvelopeError::TooLarge(MAX_BODY + 1))
    );
    let addrs = vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap(); MAX_ADDRS + 1];
    let announce = SignedWrite {
        payload: WritePayload::Announce { port: 1, addrs },
        ..full.clone()
    };
    assert!(matches!(
        SignedWrite::parse(&announce.to_json()),
        Err(EnvelopeError::TooMany { .. })
    ));
    let good: serde_json::Value = serde_json::from_slice(&signed(payloads()[0].clone())).unwrap();
    let with = |pointer: &str, value: serde_json::Value| {
        let mut body = good.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        SignedWrite::parse(&serde_json::to_vec(&body).unwrap())
    };
    let rsa_like = BASE64.encode(
        [0x08, 0x00, 0x12, 0x20]
            .iter()
            .chain(&[0; 32])
            .copied()
            .collect::<Vec<u8>>(),
    );
    assert_eq!(
        with("/key", rsa_like.into()),
        Err(EnvelopeError::UnsupportedKey)
    );
    for (pointer, value) in [
        ("/nonce", serde_json::json!("00")),
        ("/nonce", serde_json::json!("zz".repeat(16))),
        ("/signature", serde_json::json!("AAAA")),
        ("/key", serde_json::json!("!")),
        ("/timestamp", serde_json::json!(-1)),
        ("/payload/kind", serde_json::json!("delete")),
        ("/payload/port", serde_json::json!(70000)),
        ("/payload/addrs", serde_json::json!(["/ip4/1.2.3.4/nope"])),
        ("/payload/addrs", serde_json::json!(["/ip4/".repeat(100)])),
    ] {
        assert!(
            matches!(
                with(pointer, value.clone()),
                Err(EnvelopeError::Malformed(_))
            ),
            "{pointer} = {value}"
        );
    }
    let mut extra = good.clone();
    extra["peer_id"] = "someone-else".into();
    assert!(matches!(
        SignedWrite::parse(&serde_json::to_vec(&extra).unwrap()),
        Err(EnvelopeError::Malformed(_))
    ));
}

#[test]
fn answers_parse_within_their_bound() {
    let find = FindAnswer {
        hash: hash('a').to_string(),
        providers: vec![],
    };
    let body = serde_json::to_vec(&find).unwrap();
    assert_eq!(parse_answer::<FindAnswer>(&body), Ok(find));
    assert!(matches!(
        parse_answer::<MembershipAnswer>(b"{\"epoch\": 1}"),
        Err(ReadError::Malformed(_))
    ));
    let huge = vec![b' '; MAX_READ_BODY + 1];
    assert_eq!(
        parse_answer::<StatusAnswer>(&huge),
        Err(ReadError::TooLarge(MAX_READ_BODY + 1))
    );
}
