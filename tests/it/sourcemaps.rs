//! JavaScript source maps through the HTTP API: symbolic's fixtures (../shared/fixtures/
//! sourcemaps) uploaded with debug IDs injected as sentry-cli does, or under a release, then
//! frames symbolicated through `POST /api/v1/symbolicate-js` to their original file, line,
//! column, function and context; refusals of broken maps; each resolution path.

use crate::common;

use serde_json::{json, Value};

use common::{
    column_of, fixture_bytes, injected, symbolicate_js, upload_files as upload, TestServer,
};

const DIR: &str = "sourcemaps/symbolic";

#[tokio::test(flavor = "multi_thread")]
async fn webpack_frames_resolve_by_debug_id_with_names_lines_and_context() {
    let server = TestServer::start().await;
    let id = "2f259f80-58b7-44cb-d7cd-ed1e3d26f28a";
    let (js, map) = injected("webpack/bundle.js", "webpack/bundle.js.map", id, "debugId");
    let (status, answer) = upload(&server, "", &[("bundle.js", js), ("bundle.js.map", map)]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 2, "{answer}");
    assert_eq!(answer["files"][0]["artifact"]["kind"], "minified_source");
    assert_eq!(answer["files"][1]["artifact"]["kind"], "source_map");
    assert_eq!(answer["files"][1]["artifact"]["debug_id"], id);

    let url = "http://example.com/static/bundle.js";
    let call = column_of("webpack/bundle.js", "r()}");
    let throw = column_of("webpack/bundle.js", "throw new Error");
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [
                {"abs_path": url, "lineno": 1, "colno": call, "function": "r"},
                {"abs_path": url, "lineno": 1, "colno": throw},
            ]}],
            "modules": [{"type": "sourcemap", "code_file": url, "debug_id": id}],
        }),
    )
    .await;
    let frames = &answer["stacktraces"][0]["frames"];
    let bar = &frames[0];
    assert_eq!(bar["abs_path"], "webpack:///./bar.js", "{bar}");
    assert_eq!(bar["filename"], "./bar.js");
    assert_eq!(bar["module"], "bar");
    // The minified function is anonymous: its scope is named after what it is assigned to.
    assert_eq!(bar["function"], "module.exports");
    assert_eq!(bar["lineno"], 2);
    assert_eq!(bar["colno"], 3);
    assert_eq!(bar["context_line"], "  f();");
    assert_eq!(
        bar["pre_context"],
        json!(["module.exports = function bar(f) {"])
    );
    assert_eq!(bar["post_context"], json!(["};"]));
    assert_eq!(bar["in_app"], true);
    assert_eq!(bar["data"]["resolved_with"], "debug-id");
    assert_eq!(bar["data"]["symbolicated"], true);
    let foo = &frames[1];
    assert_eq!(foo["filename"], "./foo.js", "{foo}");
    assert_eq!(foo["function"], "module.exports");
    assert_eq!(
        (foo["lineno"].as_u64(), foo["colno"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(foo["context_line"], "  throw new Error(\"wat\");");
    // The frames as received come back too.
    assert_eq!(answer["raw_stacktraces"][0]["frames"][1]["colno"], throw);
    assert!(answer.get("errors").is_none(), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn inlined_and_anonymous_functions_take_their_scope_or_callers_name() {
    let server = TestServer::start().await;
    let id = "0e67d2c0-4f9e-4b4b-9f73-6a1f0a3e2a11";
    let (js, map) = injected(
        "inlining/module.js",
        "inlining/module.js.map",
        id,
        "debug_id",
    );
    let (status, answer) = upload(&server, "", &[("module.js", js), ("module.js.map", map)]).await;
    assert_eq!(status, 200, "{answer}");
    let url = "app:///module.js";
    // Oldest first, each caller at its call: buttonCallback calls bar, bar calls the inlined
    // (now anonymous) foo, which throws. foo's name comes from its caller's call site.
    let frames = json!([
        {"abs_path": url, "lineno": 1, "colno": column_of("inlining/module.js", "n(\"wat\")")},
        {"abs_path": url, "lineno": 1, "colno": column_of("inlining/module.js", "(n)}const")},
        {"abs_path": url, "lineno": 1, "colno": column_of("inlining/module.js", "throw new Error(n)")},
    ]);
    let answer = symbolicate_js(
        &server,
        json!({"stacktraces": [{"frames": frames}], "modules": [{"type": "sourcemap", "code_file": url, "debug_id": id}]}),
    )
    .await;
    let frames = &answer["stacktraces"][0]["frames"];
    let names: Vec<&str> = frames
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    let files: Vec<&str> = frames
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    let lines: Vec<u64> = frames
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["lineno"].as_u64().unwrap())
        .collect();
    assert_eq!(names, ["buttonCallback", "bar", "foo"], "{answer}");
    assert_eq!(files, ["../src/app.js", "../src/bar.js", "../src/foo.js"]);
    assert_eq!(frames[0]["abs_path"], "app:///src/app.js");
    assert_eq!(lines, [3, 4, 2]);
    assert_eq!(frames[2]["context_line"], "  throw new Error(msg);");
}

#[tokio::test(flavor = "multi_thread")]
async fn release_files_resolve_by_url_and_errors_name_what_is_missing() {
    let server = TestServer::start().await;
    let js = fixture_bytes(&format!("{DIR}/simple/minified.js"));
    let map = fixture_bytes(&format!("{DIR}/simple/minified.js.map"));
    // No debug ID and no release: refused with what to do.
    let (status, answer) = upload(&server, "", &[("minified.js", js.clone())]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("sourcemaps inject"),
        "{answer}"
    );
    // Under a release: the file has no sourceMappingURL, so its map is found as `{url}.map`.
    let (status, answer) = upload(
        &server,
        "?release=app@1.0&url_prefix=~/static/js",
        &[("minified.js", js), ("minified.js.map", map)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["files"][0]["artifact"]["url"],
        "~/static/js/minified.js"
    );

    let url = "https://cdn.example.com/static/js/minified.js?v=3";
    let frame = json!({"abs_path": url, "lineno": 1, "colno": 10, "function": "t"});
    let answer = symbolicate_js(
        &server,
        json!({"stacktraces": [{"frames": [frame]}], "release": "app@1.0"}),
    )
    .await;
    let resolved = &answer["stacktraces"][0]["frames"][0];
    assert_eq!(resolved["function"], "abcd", "{answer}");
    assert_eq!(resolved["filename"], "tests/fixtures/simple/original.js");
    assert_eq!(resolved["lineno"], 2);
    assert_eq!(resolved["data"]["resolved_with"], "release");
    assert_eq!(resolved["context_line"], "function abcd() {}");

    // Another release has nothing: the frame stays, the error says why.
    let answer = symbolicate_js(
        &server,
        json!({"stacktraces": [{"frames": [frame]}], "release": "app@2.0"}),
    )
    .await;
    assert_eq!(
        answer["stacktraces"][0]["frames"][0],
        answer["raw_stacktraces"][0]["frames"][0]
    );
    assert_eq!(answer["errors"][0]["type"], "missing_source", "{answer}");
    assert_eq!(answer["errors"][0]["abs_path"], url);
    // Line 0 is no location; an unknown debug ID has no map.
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [
                {"abs_path": "app:///a.js", "lineno": 0, "colno": 1},
                {"abs_path": "app:///b.js", "lineno": 1, "colno": 1},
            ]}],
            "modules": [{"type": "sourcemap", "code_file": "app:///b.js", "debug_id": "9f73a6a1-0a3e-4b4b-9f73-6a1f0a3e2a11"}],
        }),
    )
    .await;
    let kinds: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["invalid_location", "missing_sourcemap"], "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hermes_maps_need_no_minified_file_and_maps_without_sources_report_it() {
    let server = TestServer::start().await;
    // A Hermes map alone.
    let id = "5b6c7d8e-1234-4abc-8def-0123456789ab";
    let mut map: Value = serde_json::from_slice(&fixture_bytes(&format!(
        "{DIR}/hermes-metro/react-native-hermes.map"
    )))
    .unwrap();
    map["debugId"] = json!(id);
    let (status, answer) = upload(
        &server,
        "",
        &[(
            "index.android.bundle.map",
            serde_json::to_vec(&map).unwrap(),
        )],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["files"][0]["artifact"]["hermes"], true);
    let url = "app:///index.android.bundle";
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [{"abs_path": url, "lineno": 1, "colno": 11940}]}],
            "modules": [{"type": "sourcemap", "code_file": url, "debug_id": id}],
        }),
    )
    .await;
    let frame = &answer["stacktraces"][0]["frames"][0];
    assert_eq!(frame["data"]["symbolicated"], true, "{answer}");
    assert!(
        frame["filename"]
            .as_str()
            .is_some_and(|f| f.ends_with(".js")),
        "{frame}"
    );

    // A map whose sources have no names: resolved, with context from sourcesContent.
    let id = "6c7d8e9f-2345-4bcd-9ef0-123456789abc";
    let (js, map) = injected("nofiles.js", "nofiles.js.map", id, "debugId");
    let (status, _) = upload(&server, "", &[("nofiles.js", js), ("nofiles.js.map", map)]).await;
    assert_eq!(status, 200);
    let url = "app:///nofiles.js";
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [{"abs_path": url, "lineno": 1, "colno": 39}]}],
            "modules": [{"type": "sourcemap", "code_file": url, "debug_id": id}],
        }),
    )
    .await;
    let frame = &answer["stacktraces"][0]["frames"][0];
    assert_eq!(frame["function"], "add", "{answer}");
    assert_eq!(frame["context_line"], "\treturn a + b; // fôo");
    assert_eq!(
        frame["abs_path"], url,
        "no file name: the frame keeps its file"
    );

    // A map without sourcesContent: resolved, and the missing context is reported.
    let id = "7d8e9fa0-3456-4cde-af01-23456789abce";
    let (js, map) = injected(
        "simple/minified.js",
        "simple/minified.js.map",
        id,
        "debug_id",
    );
    let mut map: Value = serde_json::from_slice(&map).unwrap();
    map.as_object_mut().unwrap().remove("sourcesContent");
    let (status, _) = upload(
        &server,
        "",
        &[
            ("minified.js", js),
            ("minified.js.map", serde_json::to_vec(&map).unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let url = "app:///minified.js";
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [{"abs_path": url, "lineno": 1, "colno": 10}]}],
            "modules": [{"type": "sourcemap", "code_file": url, "debug_id": id}],
        }),
    )
    .await;
    let frame = &answer["stacktraces"][0]["frames"][0];
    assert_eq!(
        (frame["function"].as_str(), frame["lineno"].as_u64()),
        (Some("abcd"), Some(2))
    );
    assert_eq!(
        answer["errors"][0]["type"], "missing_source_content",
        "{answer}"
    );

    // A broken map is refused and nothing is stored.
    let before = server.stored_files();
    let broken = br#"{"version":3,"sources":["a.js"],"names":[],"mappings":"!!!","debugId":"7d8e9fa0-3456-4cde-af01-23456789abcd"}"#;
    let (status, answer) = upload(&server, "", &[("broken.js.map", broken.to_vec())]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("broken source map"),
        "{answer}"
    );
    assert_eq!(server.stored_files(), before);
}

/// A Sentry artifact bundle built here (a zip whose `manifest.json` types each file, the
/// debug ID only in the minified file's headers): every file is stored under it, the map
/// through the minified file's `sourcemap` header.
#[tokio::test(flavor = "multi_thread")]
async fn artifact_bundles_store_their_files_under_their_headers_debug_id() {
    use std::io::Write;
    let server = TestServer::start().await;
    let id = "8e9fa0b1-4567-4def-b012-3456789abcde";
    let manifest = json!({
        "files": {
            "files/_/_/bundle.js": {
                "type": "minified_source",
                "url": "~/bundle.js",
                "headers": {"debug-id": id, "sourcemap": "bundle.js.map"},
            },
            "files/_/_/bundle.js.map": {"type": "source_map", "url": "~/bundle.js.map"},
            "files/_/_/README.md": {"type": "source", "url": "~/README.md"},
        },
        "org": "acme",
    });
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (path, bytes) in [
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        (
            "files/_/_/bundle.js",
            fixture_bytes(&format!("{DIR}/webpack/bundle.js")),
        ),
        (
            "files/_/_/bundle.js.map",
            fixture_bytes(&format!("{DIR}/webpack/bundle.js.map")),
        ),
        ("files/_/_/README.md", b"# not JavaScript".to_vec()),
    ] {
        zip.start_file(path, options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    let bundle = zip.finish().unwrap().into_inner();
    let (status, answer) = upload(&server, "", &[("artifact-bundle.zip", bundle)]).await;
    assert_eq!(status, 200, "{answer}");
    let names: Vec<&str> = answer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["~/bundle.js", "~/bundle.js.map"], "{answer}");
    assert_eq!(answer["files"][1]["artifact"]["debug_id"], id, "{answer}");

    let url = "https://example.com/bundle.js";
    let answer = symbolicate_js(
        &server,
        json!({
            "stacktraces": [{"frames": [{"abs_path": url, "lineno": 1, "colno": column_of("webpack/bundle.js", "throw new Error")}]}],
            "modules": [{"type": "sourcemap", "code_file": url, "debug_id": id}],
        }),
    )
    .await;
    assert_eq!(
        answer["stacktraces"][0]["frames"][0]["filename"], "./foo.js",
        "{answer}"
    );
}
