//! Variables checked against gdb on real crashes: the crash generator's C program (built at
//! -O0 and -O2) crashed under gdb, which recorded every argument and local of the frames in
//! variables.c at the signal (fixtures/minidumps/variables/*.gdb.json), then let the program's
//! own handler write the minidump. faultline's values, read from that minidump and the
//! generator's debug file, must equal gdb's for every variable gdb showed.

use crate::common;

use std::collections::BTreeMap;

use common::{generated, generated_bytes, symbol_store, Db};
use faultline::config::{Config, VariablesScope};
use faultline::process::Processor;
use serde_json::Value;

/// The processed crash of `variables/<name>.dmp`, symbols from a store holding crasher.debug.
async fn processed(name: &str, scope: VariablesScope) -> Value {
    let (store, _dir) = symbol_store(&[generated("crasher.debug")]).await;
    let mut config = Config::default();
    config.processing.variables = scope;
    Processor::from_config(&config, store)
        .process(generated_bytes(&format!("variables/{name}.dmp")).into())
        .await
        .unwrap()
        .to_json()
}

/// A value flattened as the gdb script flattens it: `header.tag[2]` = `108`; a char leaf keeps
/// its number (`120 'x'` -> `120`); a char pointer also gives `NAME@text` as hex.
fn flatten(path: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    if let Some(elements) = char_array_elements(value) {
        for (i, element) in elements.into_iter().enumerate() {
            out.insert(format!("{path}[{i}]"), element);
        }
        return;
    }
    if let Some(variant) = value["variant"].as_str() {
        out.insert(format!("{path}@variant"), variant.to_owned());
    }
    let fields = value["fields"].as_array().filter(|f| !f.is_empty());
    if value["variant"].is_string()
        || (fields.is_none() && value["value"].is_null() && value["text"].is_string())
    {
        // A Rust enum is its variant and that variant's fields; a string, its text.
        if let Some(text) = value["text"].as_str() {
            out.insert(format!("{path}@text"), unescape_hex(text));
        }
        for field in fields.into_iter().flatten() {
            flatten(
                &format!("{path}.{}", field["name"].as_str().unwrap()),
                field,
                out,
            );
        }
        return;
    }
    if let Some(fields) = fields {
        for field in fields {
            let name = field["name"].as_str().unwrap();
            let child = if name.starts_with('[') {
                format!("{path}{name}")
            } else {
                format!("{path}.{name}")
            };
            flatten(&child, field, out);
        }
        return;
    }
    if value["value"].is_null() && value["unavailable"].is_null() {
        return; // a struct with no members known (nor gdb's leaves)
    }
    let leaf = match (value["value"].as_str(), value["unavailable"].as_str()) {
        (Some(v), _) => v.split(' ').next().unwrap().to_owned(),
        (None, Some("optimized_out")) => "<optimized out>".to_owned(),
        (None, why) => format!("<{}>", why.unwrap_or("nothing")),
    };
    out.insert(path.to_owned(), leaf);
    if let Some(text) = value["text"].as_str() {
        out.insert(format!("{path}@text"), unescape_hex(text));
    }
}

/// A `char` array is its text alone (every element, the trailing NULs left out): its elements
/// as gdb lists them, numbers, the NULs after the text included.
fn char_array_elements(value: &Value) -> Option<Vec<String>> {
    let type_name = value["type"].as_str()?;
    let (element, count) = type_name.strip_suffix(']')?.rsplit_once(" [")?;
    let count: usize = count.parse().ok()?;
    let text = value["text"]
        .as_str()
        .filter(|_| value["fields"].is_null())?;
    let mut bytes = unescape(text);
    bytes.resize(count.max(bytes.len()), 0);
    let signed = !element.contains("unsigned");
    Some(
        bytes
            .into_iter()
            .map(|b| {
                if signed {
                    (b as i8).to_string()
                } else {
                    b.to_string()
                }
            })
            .collect(),
    )
}

/// The hex of the bytes a `text` stands for (`\xNN`, `\\` and `\"` escapes).
fn unescape_hex(text: &str) -> String {
    unescape(text).iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes a `text` stands for.
fn unescape(text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            bytes.push(c as u8);
            continue;
        }
        match chars.next() {
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(&hex, 16).unwrap());
            }
            Some(other) => bytes.push(other as u8),
            None => {}
        }
    }
    bytes
}

/// Every crashing-thread frame of variables.{c,cpp,rs}: its line -> (args, locals), flattened.
type Frames = Vec<(String, BTreeMap<String, String>, BTreeMap<String, String>)>;

fn ours(json: &Value) -> Frames {
    json["crashing_thread"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["file"].as_str().is_some_and(|p| {
                ["variables.c", "variables.cpp", "variables.rs"]
                    .iter()
                    .any(|s| p.ends_with(s))
            })
        })
        .map(|frame| {
            let (mut args, mut locals) = (BTreeMap::new(), BTreeMap::new());
            // A variable of a function inlined here from elsewhere (`core::ptr::read_volatile`'s
            // `src`) is in an inline frame of its own for gdb, outside these files.
            let variables = frame["variables"].as_array().into_iter().flatten();
            for variable in variables.filter(|v| v.get("inlined").is_none()) {
                let name = variable["name"].as_str().unwrap();
                let into = match variable["kind"].as_str() {
                    Some("parameter") => &mut args,
                    _ => &mut locals,
                };
                flatten(name, variable, into);
            }
            // Frames are matched by line: gdb names a function as DWARF does (`ship`,
            // `variables_rs_o0::crash`), the symbol file as the symbol does (with parameters,
            // or an export name).
            let function = format!("line {}", frame["line"]);
            (function, args, locals)
        })
        .collect()
}

fn gdbs(name: &str) -> Frames {
    let text = std::fs::read_to_string(generated(&format!("variables/{name}.gdb.json"))).unwrap();
    let recorded: Value = serde_json::from_str(&text).unwrap();
    let map = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                // gdb could not read the memory a value is in; faultline says the same thing
                // as `not_captured`.
                let v = v.as_str().unwrap();
                let v = if v.starts_with("<error: Cannot access memory at address ") {
                    "<not_captured>"
                } else {
                    v
                };
                (k.clone(), v.to_owned())
            })
            .collect()
    };
    recorded["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let function = format!("line {}", f["line"]);
            (function, map(&f["args"]), map(&f["locals"]))
        })
        .collect()
}

/// A leaf past the 64 elements of an array faultline shows (`buffer[1000]`).
fn beyond_shown_elements(leaf: &str) -> bool {
    leaf.split('[').skip(1).any(|part| {
        part.split(']')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i >= 64)
    })
}

/// Ours must hold every leaf gdb shows with gdb's value; a string gdb read from memory the
/// dump did not capture (a literal in .rodata) is the one thing we may lack.
fn assert_same(level: &str, ours: &Frames, gdb: &Frames) {
    assert_eq!(
        ours.iter().map(|f| &f.0).collect::<Vec<_>>(),
        gdb.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "{level}: the frames of variables.c"
    );
    for ((function, our_args, our_locals), (_, gdb_args, gdb_locals)) in ours.iter().zip(gdb) {
        for (kind, our, theirs) in [
            ("args", our_args, gdb_args),
            ("locals", our_locals, gdb_locals),
        ] {
            for (leaf, expected) in theirs {
                if beyond_shown_elements(leaf) {
                    continue;
                }
                let found = our.get(leaf);
                // A container's element gdb read from live heap memory the dump did not capture.
                if found.is_some_and(|v| v == "<not_captured>") && leaf.contains('[') {
                    continue;
                }
                if leaf.ends_with("@text") && found.is_none() {
                    let pointer = leaf.trim_end_matches("@text");
                    assert!(
                        our.contains_key(pointer),
                        "{level} {function} {kind}: {pointer}"
                    );
                    continue;
                }
                assert_eq!(
                    found,
                    Some(expected),
                    "{level} {function} {kind}: {leaf} (ours: {our:#?})"
                );
            }
            // A string gdb read from memory the dump lacks: ours shows where it points.
            let extra: Vec<_> = our
                .keys()
                .filter(|k| !theirs.contains_key(*k) && !theirs.contains_key(&format!("{k}@text")))
                .collect();
            assert!(
                extra.is_empty(),
                "{level} {function} {kind}: gdb has no {extra:?}"
            );
        }
    }
}

/// The crash generator's dump `name` (`c-O0`, `rs-O2`…) against what gdb showed at its signal.
async fn equal_to_gdbs(name: &str) {
    let json = processed(name, VariablesScope::CrashingThread).await;
    assert_same(name, &ours(&json), &gdbs(name));
}

#[tokio::test(flavor = "multi_thread")]
async fn values_at_minus_o0_equal_gdbs() {
    equal_to_gdbs("c-O0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn values_at_minus_o2_equal_gdbs() {
    equal_to_gdbs("c-O2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cpp_strings_and_vectors_at_minus_o0_equal_gdbs_printers() {
    equal_to_gdbs("cpp-O0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cpp_strings_and_vectors_at_minus_o2_equal_gdbs_printers() {
    equal_to_gdbs("cpp-O2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_strings_vecs_and_enums_at_opt_level_0_equal_gdbs_printers() {
    equal_to_gdbs("rs-O0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_strings_vecs_and_enums_at_opt_level_2_equal_gdbs_printers() {
    equal_to_gdbs("rs-O2").await;
}

/// A third party's crash (symbolic's crash_linux.dmp, with its own debug file): the crashing
/// frame writes through `volatile int *a = NULL`, and its variables say so.
#[tokio::test(flavor = "multi_thread")]
async fn a_third_party_linux_crash_shows_the_null_pointer_it_wrote_through() {
    let (store, _dir) = symbol_store(&[common::fixture("minidumps/symbolic/crash_linux")]).await;
    let json = Processor::from_config(&Config::default(), store)
        .process(common::fixture_bytes("minidumps/symbolic/crash_linux.dmp").into())
        .await
        .unwrap()
        .to_json();
    let top = &json["crashing_thread"]["frames"][0];
    let variables = top["variables"]
        .as_array()
        .expect("variables on the crashing frame");
    let a = variables
        .iter()
        .find(|v| v["name"] == "a")
        .expect("the local `a`");
    assert_eq!(a["type"], "volatile int *", "{a}");
    assert_eq!(a["value"], "0x0", "{a}");
    assert_eq!(a["points_to"], "null", "{a}");
    assert_eq!(a["kind"], "local", "{a}");
    // Only the crashing thread by default; none with `off`.
    let others = json["threads"].as_array().unwrap().iter().enumerate();
    let crashing = json["crash_info"]["crashing_thread"].as_u64().unwrap() as usize;
    for (i, thread) in others.filter(|(i, _)| *i != crashing) {
        let with = thread["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.get("variables").is_some());
        assert!(!with, "thread {i} has variables");
    }
    let mut config = Config::default();
    config.processing.variables = VariablesScope::Off;
    let (store, _dir) = symbol_store(&[common::fixture("minidumps/symbolic/crash_linux")]).await;
    let off = Processor::from_config(&config, store)
        .process(common::fixture_bytes("minidumps/symbolic/crash_linux.dmp").into())
        .await
        .unwrap()
        .to_json();
    assert!(off["crashing_thread"]["frames"][0]
        .get("variables")
        .is_none());
}

/// Hostile stack contents: the -O2 dump with bytes overwritten all over (stack memory, the
/// pointers variables hold, the strings behind them) is processed or refused, never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn mutated_dumps_never_panic_while_reading_variables() {
    let (store, _dir) = symbol_store(&[generated("crasher.debug")]).await;
    let processor = Processor::from_config(&Config::default(), store);
    let original = generated_bytes("variables/c-O2.dmp");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut processed = 0;
    for _ in 0..48 {
        let mut dump = original.clone();
        for _ in 0..64 {
            let at = 32 + (next() as usize) % (dump.len() - 32);
            dump[at] = next() as u8;
        }
        match processor.process(dump.into()).await {
            Ok(_) => processed += 1,
            Err(faultline::process::ProcessError::Internal(e)) => panic!("internal error: {e}"),
            Err(_) => {}
        }
    }
    assert!(
        processed > 10,
        "only {processed} of 48 mutated dumps processed"
    );
}

/// The verdict traces the fault address to a variable: the read at 0x10 is `node->next` (null,
/// one dereference from the parameter `node`) plus the offset of its field `name`; symbolic's
/// crash_linux.dmp writes at 0x0 through its local `a`. Without variables, no such sentence.
#[tokio::test(flavor = "multi_thread")]
async fn the_verdict_names_the_variable_the_fault_address_came_from() {
    let classifier = faultline::classify::Classifier::new(&Config::default().classify).unwrap();
    for (scope, expected) in [
        (
            VariablesScope::CrashingThread,
            Some("0x10 = `node->next` (0x0) + 0x10, field `name`"),
        ),
        (VariablesScope::Off, None),
    ] {
        for level in ["c-O0", "c-O2"] {
            let (store, _dir) = symbol_store(&[generated("crasher.debug")]).await;
            let mut config = Config::default();
            config.processing.variables = scope;
            let crash = Processor::from_config(&config, store)
                .process(generated_bytes(&format!("variables/{level}.dmp")).into())
                .await
                .unwrap();
            let sentences = classifier.classify(&crash).signals.sentences();
            let first = sentences.first().map(String::as_str);
            match expected {
                Some(sentence) => assert_eq!(first, Some(sentence), "{level}: {sentences:?}"),
                None => assert_eq!(first, Some("a null pointer plus offset 0x10"), "{level}"),
            }
        }
    }
    let (store, _dir) = symbol_store(&[common::fixture("minidumps/symbolic/crash_linux")]).await;
    let crash = Processor::from_config(&Config::default(), store)
        .process(common::fixture_bytes("minidumps/symbolic/crash_linux.dmp").into())
        .await
        .unwrap();
    let variable = crash.fault_variable.expect("the fault's variable");
    assert_eq!(
        (
            variable.expression.as_str(),
            variable.value,
            variable.offset
        ),
        ("a", 0, 0)
    );
}

/// The group's evidence (JSON and Markdown, as the API and MCP serve it) carries the fault
/// frame's variables and the sentence tracing the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_evidence_carries_the_fault_frames_variables() {
    let server = server_with_generator_symbols(Db::Sqlite, |_| {})
        .await
        .expect("SQLite is always there");
    let id = common::submit(&server, "variables/c-O0.dmp", &[]).await;
    let (status, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
    assert_eq!(status, 200, "{crash}");
    let group = crash["crash"]["group_id"].as_i64().expect("a group");
    let (status, evidence) = server
        .get_json(&format!("/api/v1/groups/{group}/evidence"))
        .await;
    assert_eq!(status, 200, "{evidence}");
    let verdict = &evidence["verdict"];
    assert_eq!(
        verdict["fault_variable"],
        "0x10 = `node->next` (0x0) + 0x10, field `name`"
    );
    let names: Vec<&str> = verdict["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["buf", "len", "node", "first", "share", "shade", "checked"]
    );
    assert_eq!(verdict["variables"][6]["value"], "63");
    assert_eq!(verdict["variables"][4]["value"], "31.5");
    let markdown = server
        .client
        .get(server.url(&format!("/api/v1/groups/{group}/evidence?format=markdown")))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        markdown.contains("- Its variables: `buf = 0x"),
        "{markdown}"
    );
    assert!(markdown.contains("`checked = 63`"), "{markdown}");
    assert!(
        markdown.contains("node->next") || markdown.contains("node-\\>next"),
        "{markdown}"
    );
}

/// A server on `db` with the crash generator's debug file uploaded (`None`: no Postgres here).
async fn server_with_generator_symbols(
    db: Db,
    tweak: impl FnOnce(&mut Config),
) -> Option<common::TestServer> {
    let server = common::TestServer::start_on(db, tweak).await?;
    let (status, answer) = server
        .upload("crasher.debug", generated_bytes("crasher.debug"))
        .await;
    assert_eq!(status, 200, "{answer}");
    Some(server)
}

on_both_databases! {
/// `processing.project_variables` keeps one project's crashes free of variables while the
/// others keep the default: the same dump through `/submit`, under each project's ingest key.
async fn a_project_can_turn_variables_off_for_its_crashes(db: Db) {
    let Some(server) = server_with_generator_symbols(db, |config| {
        config
            .processing
            .project_variables
            .insert("payments".to_owned(), VariablesScope::Off);
    })
    .await
    else {
        return;
    };
    let mut top_frames = BTreeMap::new();
    for project in ["Payments", "Game"] {
        let slug = server.create_project(project).await["slug"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, key) = server
            .admin_post(
                &format!("/api/v1/projects/{slug}/keys"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        let form = common::crash_form(&generated_bytes("variables/c-O0.dmp"));
        let (status, reply) = common::post(
            &server,
            &format!("/submit?key={}", key["key"].as_str().unwrap()),
            Some("multipart/form-data; boundary=B"),
            &[],
            form,
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        let id = reply.trim().strip_prefix("CrashID=bp-").unwrap().to_owned();
        assert_eq!(common::settled(&server, &id).await["state"], "processed");
        let (status, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
        assert_eq!(status, 200, "{crash}");
        let top = crash["processed"]["crashing_thread"]["frames"][0].clone();
        top_frames.insert(slug, top);
    }
    let game = &top_frames["game"];
    assert!(
        game["variables"].as_array().is_some_and(|v| !v.is_empty()),
        "{game}"
    );
    let payments = &top_frames["payments"];
    assert_eq!(payments["function"], game["function"], "{payments}");
    assert!(payments.get("variables").is_none(), "{payments}");
}
}

on_both_databases! {
/// Alert messages carry the fault frame's variables only through a channel created with
/// `include_variables`: the same new group reaches two webhooks, one opted in. A flag that is
/// not a boolean is refused.
async fn only_a_channel_that_opted_in_hears_the_variables(db: Db) {
    use common::alerting::create;
    let Some(server) = server_with_generator_symbols(db, |_| {}).await else {
        return;
    };
    let (status, refused) = server
        .admin_post(
            "/api/v1/channels",
            serde_json::json!({"name": "hook", "include_variables": "yes",
                "config": {"kind": "webhook", "url": "http://127.0.0.1:9/", "secret": "0123456789abcdef"}}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("include_variables"), "{refused}");
    let mut receivers = Vec::new();
    for include_variables in [true, false] {
        let receiver = common::receiver::Receiver::start().await;
        let channel = create(
            &server,
            "/api/v1/channels",
            serde_json::json!({
                "name": format!("hook {include_variables}"),
                "include_variables": include_variables,
                "config": {"kind": "webhook", "url": receiver.url, "secret": "0123456789abcdef"}
            }),
        )
        .await;
        let (status, listed) = server
            .get_json(&format!("/api/v1/channels/{channel}"))
            .await;
        assert_eq!(status, 200, "{listed}");
        assert_eq!(listed["include_variables"], include_variables, "{listed}");
        create(
            &server,
            "/api/v1/alert-rules",
            serde_json::json!({"name": format!("new {include_variables}"), "triggers": [{"kind": "new_group"}], "actions": [{"channel": channel}]}),
        )
        .await;
        receivers.push(receiver);
    }
    common::submit(&server, "variables/c-O0.dmp", &[]).await;
    let within = std::time::Duration::from_secs(30);
    let opted_in = receivers[0].wait_for(1, within).await[0].json();
    let evidence = opted_in["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence
            .contains("Fault address: 0x10 = \\`node-\\>next\\` (0x0) + 0x10, field \\`name\\`"),
        "{opted_in}"
    );
    assert!(evidence.contains("checked = 63"), "{opted_in}");
    let other = receivers[1].wait_for(1, within).await[0].json();
    let text = other.to_string();
    assert!(!text.contains("checked"), "{other}");
    assert!(!text.contains("node->next"), "{other}");
}
}
