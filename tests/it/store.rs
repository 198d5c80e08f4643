//! The object-store contract, run against both backends: the filesystem, and a real S3 server
//! (s3s-fs, checking request signatures) on loopback. Then a whole server on S3: symbol
//! uploads, derived caches, crash ingest and processing; and an unreachable S3 answering 503.
//! The S3 server: see `common/s3.rs`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
use common::TestServer;
use faultline::config::{S3Config, StorageBackend};
use faultline::store::{FsStore, ObjectKey, ObjectStore, PutBody, S3Store};
use tokio::io::AsyncReadExt;

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).unwrap()
}

/// The contract every backend keeps.
async fn contract(store: Arc<dyn ObjectStore>) {
    assert!(store
        .get(&key("symbols/none/x.meta.json"))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .head(&key("symbols/none/x.meta.json"))
        .await
        .unwrap()
        .is_none());
    store
        .delete(&key("symbols/none/x.meta.json"))
        .await
        .unwrap();

    store
        .put(
            &key("symbols/abc/1.meta.json"),
            PutBody::Bytes(Bytes::from_static(b"one")),
        )
        .await
        .unwrap();
    store
        .put(
            &key("symbols/abc/2.meta.json"),
            PutBody::Bytes(Bytes::from_static(b"second")),
        )
        .await
        .unwrap();
    store
        .put(
            &key("symbols/abd/3.meta.json"),
            PutBody::Bytes(Bytes::new()),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .read_all(&key("symbols/abc/1.meta.json"), 100)
            .await
            .unwrap()
            .unwrap(),
        "one"
    );
    assert_eq!(
        store
            .head(&key("symbols/abc/2.meta.json"))
            .await
            .unwrap()
            .unwrap()
            .size,
        6
    );
    // Overwrite: readers see the whole new object.
    store
        .put(
            &key("symbols/abc/1.meta.json"),
            PutBody::Bytes(Bytes::from_static(b"uno!")),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .read_all(&key("symbols/abc/1.meta.json"), 100)
            .await
            .unwrap()
            .unwrap(),
        "uno!"
    );
    // Reading more than allowed is refused.
    assert!(store
        .read_all(&key("symbols/abc/2.meta.json"), 3)
        .await
        .is_err());

    let listed: Vec<(String, u64)> = store
        .list("symbols/abc/")
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.key.to_string(), i.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("symbols/abc/1.meta.json".to_owned(), 4),
            ("symbols/abc/2.meta.json".to_owned(), 6)
        ]
    );
    assert_eq!(store.list("symbols/").await.unwrap().len(), 3);
    assert!(store.list("nothing/here/").await.unwrap().is_empty());

    // A file larger than one multipart part (5 MiB on S3) streams up and back intact.
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    store
        .put(
            &key("caches/abc/symcache.v1"),
            PutBody::File(dir.path().join("big")),
        )
        .await
        .unwrap();
    let mut reader = store
        .get(&key("caches/abc/symcache.v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.size, big.len() as u64);
    let mut back = Vec::new();
    reader.body.read_to_end(&mut back).await.unwrap();
    assert!(back == big, "the large object round-trips");

    store.delete(&key("symbols/abc/2.meta.json")).await.unwrap();
    assert!(store
        .get(&key("symbols/abc/2.meta.json"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.list("symbols/abc/").await.unwrap().len(), 1);
}

#[tokio::test]
async fn filesystem_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(FsStore::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_backend_keeps_the_contract() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    contract(Arc::new(S3Store::connect(&s3.config).await.unwrap())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_s3_credentials_are_refused_by_the_server() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let mut config = s3.config.clone();
    config.secret_key = "wrong".into();
    config.max_attempts = 1;
    let store = S3Store::connect(&config).await.unwrap();
    let err = store
        .put(
            &key("symbols/x/y.meta.json"),
            PutBody::Bytes(Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("put"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_server_runs_on_s3() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let config = s3.config.clone();
    let server = TestServer::start_with(move |c| {
        c.storage.backend = StorageBackend::S3;
        c.storage.s3 = config;
    })
    .await;
    // Symbols in, identified, deduplicated, cached.
    let (status, body) = server.upload_fixture("debug-files/linux/crash.debug").await;
    assert_eq!(status, 200, "{body}");
    let (_, again) = server.upload_fixture("debug-files/linux/crash.debug").await;
    assert_eq!(again["files"][0]["status"], "already_present");
    server.upload_fixture("debug-files/linux/crash").await;
    let (status, caches) = server
        .get_json("/api/v1/symbols/c0bcc3f1-9827-fe65-3058-404b2831d9e6/caches")
        .await;
    assert_eq!(status, 200, "{caches}");
    assert_eq!(
        caches["caches"][0]["source"]["uploaded_name"],
        "crash.debug"
    );
    // A crash through ingest, processed from S3.
    let dump = common::fixture_bytes("minidumps/rust-minidump/linux-mini.dmp");
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"a\"\r\n\r\n".to_vec();
    body.extend_from_slice(&dump);
    body.extend_from_slice(b"\r\n--B--\r\n");
    let response = server
        .client
        .post(server.url("/submit"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response
        .text()
        .await
        .unwrap()
        .trim()
        .trim_start_matches("CrashID=bp-")
        .to_owned();
    for _ in 0..200 {
        let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        if crash["state"] == "processed" {
            assert_eq!(
                crash["processed"]["threads"][0]["frames"][0]["function"],
                "main"
            );
            assert_eq!(crash["processed"]["threads"][0]["frames"][0]["line"], 35);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the crash was not processed on S3");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_s3_means_503_and_nothing_acknowledged() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with(move |c| {
        c.storage.backend = StorageBackend::S3;
        c.storage.s3 = S3Config {
            bucket: "faultline".into(),
            endpoint: format!("http://127.0.0.1:{closed}"),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            max_attempts: 2,
            timeout_secs: 2,
            ..S3Config::default()
        };
    })
    .await;
    let dump = common::fixture_bytes("minidumps/rust-minidump/linux-mini.dmp");
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; filename=\"a\"\r\n\r\n".to_vec();
    body.extend_from_slice(&dump);
    body.extend_from_slice(b"\r\n--B--\r\n");
    let response = server
        .client
        .post(server.url("/submit"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(!response.text().await.unwrap().contains("CrashID"));
    let (status, body) = server.upload_fixture("debug-files/linux/crash.sym").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["files"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("could not store"),
        "{body}"
    );
}
