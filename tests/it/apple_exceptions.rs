//! An uncaught Objective-C exception, as Crashpad records it on macOS: a simulated exception
//! with code 0x43506E78 ("CPnx"), the exception's name and reason and the return addresses of
//! the throw stack in the module annotations. The dump is synthesized (minidump-synth, as
//! rust-minidump's own tests make theirs), its modules' symbols are Breakpad files uploaded by
//! the test: the class, the verdict, the throw stack and the signature are checked end to end.

use minidump_common::format as md;
use minidump_synth::{
    CrashpadInfo, DumpString, Exception, ListStream, Module, ModuleCrashpadInfo, SynthMinidump,
    SystemInfo, Thread,
};
use serde_json::Value;
use test_assembler::{Endian, Section};

use crate::common::TestServer;

const APP_GUID: [u8; 16] = *b"\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x01";
const OBJC_GUID: [u8; 16] = *b"\x21\x22\x23\x24\x25\x26\x27\x28\x29\x2a\x2b\x2c\x2d\x2e\x2f\x30";

/// A CodeView record (PDB 7.0 form, as Breakpad and Crashpad write Mach-O UUIDs).
fn codeview(guid: [u8; 16], name: &str) -> Section {
    Section::with_endian(Endian::Little)
        .D32(0x5344_5352)
        .append_bytes(&guid)
        .D32(0)
        .append_bytes(name.as_bytes())
        .D8(0)
}

/// The Breakpad ID of a module with this CodeView GUID (the GUID's fields as a Windows GUID,
/// age 0).
fn breakpad_id(guid: [u8; 16]) -> String {
    let uuid = uuid::Uuid::from_bytes_le(guid);
    format!("{}0", uuid.simple().to_string().to_uppercase())
}

/// A macOS dump of an uncaught NSRangeException thrown from `-[AppDelegate buttonPressed:]`.
fn objc_exception_dump() -> Vec<u8> {
    let e = Endian::Little;
    let app_path = DumpString::new("/Applications/MyApp.app/Contents/MacOS/MyApp", e);
    let objc_path = DumpString::new("/usr/lib/libobjc.A.dylib", e);
    let app_cv = codeview(APP_GUID, "MyApp");
    let objc_cv = codeview(OBJC_GUID, "libobjc.A.dylib");
    let app = Module::new(e, 0x1_0000_0000, 0x10000, &app_path, 0, 0, None).cv_record(&app_cv);
    let objc =
        Module::new(e, 0x7fff_2000_0000, 0x10_0000, &objc_path, 0, 0, None).cv_record(&objc_cv);
    let system = SystemInfo::new(e)
        .set_platform_id(md::PlatformId::MacOs as u32)
        .set_processor_architecture(md::ProcessorArchitecture::PROCESSOR_ARCHITECTURE_AMD64 as u16);
    let mut exception = Exception::new(e);
    exception.thread_id = 1;
    exception.exception_record.exception_code = 0x4350_6E78;
    let annotations = ModuleCrashpadInfo::new(0, e)
        .add_simple_annotation("exceptionName", "NSRangeException")
        .add_simple_annotation(
            "exceptionReason",
            "*** -[__NSArrayM objectAtIndex:]: index 5 beyond bounds [0 .. 2]",
        )
        .add_simple_annotation(
            "firstexception_bt",
            "0x7fff20005010 0x100001020 0x100002010",
        );
    SynthMinidump::with_endian(e)
        .add_system_info(system)
        .add_exception(exception)
        .add(app_path)
        .add(objc_path)
        .add(app_cv)
        .add(objc_cv)
        .add_module(app)
        .add_module(objc)
        .add_crashpad_info(CrashpadInfo::new(e).add_module(annotations))
        .add_stream(ListStream::<Thread>::new(
            md::MINIDUMP_STREAM_TYPE::ThreadListStream as u32,
            e,
        ))
        .finish()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uncaught_objective_c_exception_is_judged_by_its_throw_stack() {
    let server = TestServer::start().await;
    let app_sym = format!(
        "MODULE mac x86_64 {} MyApp\nFUNC 1000 100 0 -[AppDelegate buttonPressed:]\n\
         FUNC 2000 100 0 main\n",
        breakpad_id(APP_GUID)
    );
    let objc_sym = format!(
        "MODULE mac x86_64 {} libobjc.A.dylib\nFUNC 5000 100 0 objc_exception_throw\n",
        breakpad_id(OBJC_GUID)
    );
    for (name, text) in [("MyApp.sym", app_sym), ("libobjc.A.dylib.sym", objc_sym)] {
        let (status, body) = server.upload(name, text.into_bytes()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["files"][0]["status"], "stored", "{body}");
    }
    let response = server
        .client
        .post(server.url("/api/v1/minidump"))
        .body(objc_exception_dump())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let json: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{json}");

    let thrown = &json["uncaught_exception"];
    assert_eq!(thrown["kind"], "objc");
    assert_eq!(thrown["name"], "NSRangeException");
    let functions: Vec<&str> = thrown["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        functions,
        [
            "objc_exception_throw",
            "-[AppDelegate buttonPressed:]",
            "main"
        ]
    );
    assert_eq!(thrown["frames"][1]["module"], "MyApp");
    assert_eq!(thrown["frames"][1]["module_offset"], "0x1020");

    let classification = &json["classification"];
    assert_eq!(
        classification["fault_class"], "objc-exception",
        "{classification}"
    );
    let rule = classification["evidence"]["rule"].as_str().unwrap();
    assert!(
        rule.contains("NSRangeException: *** -[__NSArrayM objectAtIndex:]: index 5 beyond bounds"),
        "{rule}"
    );
    assert!(classification["evidence"]["crash_reason"]
        .as_str()
        .unwrap()
        .starts_with("uncaught NSException: NSRangeException"));
    assert_eq!(
        classification["fault_frame"]["function"],
        "-[AppDelegate buttonPressed:]"
    );
    assert_eq!(classification["exploitability"]["rating"], "none");
    let signature = json["grouping"]["signature"].as_str().unwrap();
    assert!(
        signature.contains("-[AppDelegate buttonPressed:]"),
        "the signature comes from the throw site: {signature}"
    );

    // Received from a crash reporter, its page shows the throw stack.
    let id = crate::common::submit_bytes(&server, &objc_exception_dump(), &[]).await;
    let (_, crash) = server.get_json(&format!("/api/v1/crashes/{id}")).await;
    assert_eq!(crash["crash"]["fault_class"], "objc-exception", "{crash}");
    let ui = crate::common::ui::UiSession::sign_in(&server, &server.admin_token).await;
    let page = ui.get(&format!("/ui/crashes/{id}")).await;
    assert!(
        page.body.contains(
            "Uncaught Objective-C exception NSRangeException: *** -[__NSArrayM objectAtIndex:]"
        ),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("<code>-[AppDelegate buttonPressed:] (MyApp + 0x1020)</code>"));
}
