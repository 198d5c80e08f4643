//! The symbol tools' upload protocols, spoken as their clients speak them (recorded request
//! shapes: none of these clients runs here): Mozilla's Tecken (`POST /upload/`), Backtrace
//! (`POST /post?format=symbols`), and Breakpad's symupload, protocol v1 (one multipart POST)
//! and v2 (check, create, PUT, complete). sentry-cli's chunked upload, whose real client does
//! run here, is tests/it/sentry_cli.rs.

use crate::common;

use common::{fixture_bytes, TestServer};
use serde_json::Value;

/// Mozilla's upload scripts (`upload_symbols.py`): a multipart POST to `/upload/` whose one
/// file part, named after the zip, is the zip; `Auth-Token` header; success is a 201.
#[tokio::test(flavor = "multi_thread")]
async fn tecken_upload_route_answers_as_tecken_does() {
    let server = TestServer::start().await;
    let (token, _) = server
        .create_token(serde_json::json!({"name": "taskcluster", "scopes": ["symbols:write"]}))
        .await;
    let send = |token: Option<&str>| {
        let form = reqwest::multipart::Form::new().part(
            "target.crashreporter-symbols.zip",
            reqwest::multipart::Part::bytes(fixture_bytes("upload-archives/tecken/sample.zip"))
                .file_name("target.crashreporter-symbols.zip"),
        );
        let mut request = server
            .anonymous
            .post(server.url("/upload/"))
            .multipart(form);
        if let Some(token) = token {
            request = request.header("Auth-Token", token);
        }
        request.send()
    };
    let response = send(Some(&token)).await.unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["upload"]["filename"],
        "target.crashreporter-symbols.zip"
    );
    assert_eq!(body["upload"]["user"], "taskcluster");
    assert_eq!(body["upload"]["skipped_keys"], serde_json::json!([]));
    assert!(body["upload"]["completed_at"].is_string(), "{body}");
    // The same zip again: its symbol file is already there, as Tecken's skipped_keys says.
    let body: Value = send(Some(&token)).await.unwrap().json().await.unwrap();
    let sym = "xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym";
    assert_eq!(body["upload"]["skipped_keys"], serde_json::json!([sym]));
    // Stored where symbol clients look (the content's MODULE line names the debug ID).
    let response = server
        .anonymous
        .get(server.url("/symbols/xpcshell.dbg/BBACA09FD1C13F6C84254BFD8732AF400/xpcshell.sym"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    assert_eq!(send(None).await.unwrap().status(), 401);
    let response = server
        .client
        .post(server.url("/upload/"))
        .form(&[("url", "https://example.com/symbols.zip")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("multipart"),
        "{body}"
    );
}

/// Backtrace's symbol upload: `POST /post?format=symbols&token=…` with the file as the body.
#[tokio::test(flavor = "multi_thread")]
async fn backtrace_symbol_uploads_take_the_token_from_the_query() {
    let server = TestServer::start().await;
    let (writer, _) = server
        .create_token(serde_json::json!({"name": "ci", "scopes": ["symbols:write"]}))
        .await;
    let (reader, _) = server
        .create_token(serde_json::json!({"name": "ro", "scopes": ["symbols:read"]}))
        .await;
    let rel = "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym";
    let post = |token: &str| {
        server
            .anonymous
            .post(server.url(&format!(
                "/post?format=symbols&token={token}&name=test_app.sym"
            )))
            .body(fixture_bytes(rel))
            .send()
    };
    let response = post(&writer).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response"], "ok", "{body}");
    assert_eq!(body["stored"], 1, "{body}");
    let served = server
        .anonymous
        .get(server.url("/symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(post(&reader).await.unwrap().status(), 403);
    assert_eq!(post("not-a-token").await.unwrap().status(), 401);
    assert_eq!(post("").await.unwrap().status(), 401);
}

/// Breakpad's `symupload` (protocol v1): one multipart POST with the `.sym` as `symbol_file`
/// and its identity as form fields; success is a 200.
#[tokio::test(flavor = "multi_thread")]
async fn symupload_v1_posts_are_accepted_with_their_form_fields() {
    let server = TestServer::start().await;
    let rel = "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym";
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in [
        ("code_file", "test_app.exe"),
        ("debug_file", "test_app.pdb"),
        ("debug_identifier", "5A9832E5287241C1838ED98914E9B7FF1"),
        ("os", "windows"),
        ("cpu", "x86"),
    ] {
        form = form.text(name, value);
    }
    let form = form.part(
        "symbol_file",
        reqwest::multipart::Part::bytes(fixture_bytes(rel)).file_name("test_app.sym"),
    );
    let response = server
        .client
        .post(server.url("/api/v1/symbols"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["stored"].as_u64(), body["skipped"].as_u64()),
        (Some(1), Some(5)),
        "{body}"
    );
    assert_eq!(body["rejected"], 0, "{body}");
    // Form fields alone are not an upload.
    let response = server
        .client
        .post(server.url("/api/v1/symbols"))
        .multipart(reqwest::multipart::Form::new().text("os", "windows"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// What symupload's regular expression `"NAME": "([^"]+)"` finds in an answer.
fn symupload_reads(answer: &str, name: &str) -> Option<String> {
    let pattern = regex::Regex::new(&format!(r#""{name}": "([^"]+)""#)).unwrap();
    pattern.captures(answer).map(|c| c[1].to_owned())
}

/// Breakpad's `symupload -p sym-upload-v2` (protocol v2), request by request as its
/// libcurl client sends them: the status check, an empty POST to create the upload, a chunked
/// PUT of the file without a token, and a completion whose body is not strict JSON.
#[tokio::test(flavor = "multi_thread")]
async fn symupload_v2_checks_creates_puts_and_completes() {
    let server = TestServer::start().await;
    let (token, _) = server
        .create_token(serde_json::json!({"name": "ci", "scopes": ["symbols:write"]}))
        .await;
    let (reader, _) = server
        .create_token(serde_json::json!({"name": "ro", "scopes": ["symbols:read"]}))
        .await;
    let (server, token, reader) = (&server, token.as_str(), reader.as_str());
    let client = &server.anonymous;
    let (debug_file, debug_id) = ("test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1");
    let sym = fixture_bytes(
        "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym",
    );
    let check = || async {
        let url = server.url(&format!(
            "/v1/symbols/{debug_file}/{debug_id}:checkStatus?key={token}"
        ));
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        symupload_reads(&response.text().await.unwrap(), "status").unwrap()
    };
    let create = |key: &str| {
        let url = server.url(&format!("/v1/uploads:create?key={key}"));
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }
    };
    let put = |url: String, body: Vec<u8>| async move {
        // Chunked, as curl sends an upload whose size it was not told.
        let stream = futures::stream::iter([Ok::<_, std::io::Error>(body)]);
        let response = client
            .put(url)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    };
    let complete = |upload_key: String| async move {
        let url = server.url(&format!("/v1/uploads/{upload_key}:complete?key={token}"));
        let body = format!(
            "{{ symbol_id: {{debug_file: \"{debug_file}\", debug_id: \"{debug_id}\" }}, symbol_upload_type: \"BREAKPAD\" }}"
        );
        let response = client
            .post(url)
            .header("content-type", "application/son")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };

    assert_eq!(check().await, "MISSING");
    let (status, created) = create(token).await;
    assert_eq!(status, 200, "{created}");
    let upload_url = symupload_reads(&created, "uploadUrl").expect("symupload finds the URL");
    let upload_key = symupload_reads(&created, "uploadKey").expect("symupload finds the key");
    assert_eq!(upload_url, server.url(&format!("/v1/uploads/{upload_key}")));

    // Completing before the file was sent is a conflict, and leaves the upload open.
    let (status, _) = complete(upload_key.clone()).await;
    assert_eq!(status, 409);
    assert_eq!(put(upload_url.clone(), sym.clone()).await, 200);
    let (status, answer) = complete(upload_key.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(symupload_reads(&answer, "result").as_deref(), Some("OK"));
    assert_eq!(check().await, "FOUND");
    let served = client
        .get(server.url(&format!("/symbols/{debug_file}/{debug_id}/test_app.sym")))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap(), sym);
    // A completed upload is gone: its URL takes nothing more.
    assert_eq!(put(upload_url, sym.clone()).await, 404);
    assert!(server
        .stored_files()
        .iter()
        .all(|f| !f.starts_with("uploads/")));

    // The same file again (symupload's --force): DUPLICATE_DATA.
    let (_, created) = create(token).await;
    let key = symupload_reads(&created, "uploadKey").unwrap();
    put(symupload_reads(&created, "uploadUrl").unwrap(), sym.clone()).await;
    let (status, answer) = complete(key).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        symupload_reads(&answer, "result").as_deref(),
        Some("DUPLICATE_DATA")
    );

    // Not a debug file: a 400 with the reason.
    let (_, created) = create(token).await;
    let key = symupload_reads(&created, "uploadKey").unwrap();
    put(
        symupload_reads(&created, "uploadUrl").unwrap(),
        b"MODULE nonsense".to_vec(),
    )
    .await;
    let (status, answer) = complete(key).await;
    assert_eq!(status, 400, "{answer}");
    let body: Value = serde_json::from_str(&answer).unwrap();
    assert!(body["error"].is_string(), "{body}");

    // An upload left for more than an hour has expired.
    let (_, created) = create(token).await;
    let key = symupload_reads(&created, "uploadKey").unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    let record = server.store_root.join(format!("uploads/{digest}.json"));
    assert!(record.exists(), "the record is named by the key's SHA-256");
    std::fs::write(&record, br#"{"opened_at": 0}"#).unwrap();
    assert_eq!(
        put(symupload_reads(&created, "uploadUrl").unwrap(), sym.clone()).await,
        410
    );

    // Keys that were never handed out, tokens that may not write, unknown actions.
    assert_eq!(
        put(
            server.url(&format!("/v1/uploads/{}", "0".repeat(40))),
            sym.clone()
        )
        .await,
        404
    );
    assert_eq!(put(server.url("/v1/uploads/..%2f..%2fetc"), sym).await, 404);
    assert_eq!(create(reader).await.0, 403);
    for key in [reader, ""] {
        let expected = if key.is_empty() { 401 } else { 403 };
        let check = format!("/v1/symbols/{debug_file}/{debug_id}:checkStatus?key={key}");
        let response = client.get(server.url(&check)).send().await.unwrap();
        assert_eq!(response.status(), expected, "{check}");
        let done = format!("/v1/uploads/{}:complete?key={key}", "0".repeat(40));
        let response = client.post(server.url(&done)).send().await.unwrap();
        assert_eq!(response.status(), expected, "{done}");
    }
    assert_eq!(create("").await.0, 401);
    let response = client
        .get(server.url(&format!(
            "/v1/symbols/{debug_file}/{debug_id}:frobnicate?key={token}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
