//! The store as the team's symbol server, in the layouts debuggers and stack walkers already
//! request, so they fetch the files crash processing keeps:
//! - `GET /symbols/{file}/{key}/{file}`: Breakpad `.sym` files (`minidump-stackwalk
//!   --symbols-url`), and Microsoft's symbol-server layout and its SSQP keys (WinDbg, Visual
//!   Studio, `symchk`): a PDB by GUID+age, a PE by timestamp+size,
//!   `elf-buildid-…`, `elf-buildid-sym-…`, `mach-uuid-…`, `mach-uuid-sym-…`. Keys and names are
//!   compared without case, as the protocol requires; compressed `.pd_` names are not found, so
//!   clients fall back to the plain name.
//! - `GET /buildid/{BUILD_ID}/debuginfo` and `/executable`: elfutils' debuginfod (gdb,
//!   `debuginfod-find`, perf, systemd-coredump), with its `X-DEBUGINFOD-*` headers.
//!
//! A file not stored is asked of the upstream sources configured with `serve = true` (PDBs and
//! `.sym` files by debug ID, ELF files by build ID), stored, and answered: faultline is the
//! team's caching symbol proxy, uploaded and upstream files behind one address.
//!
//! Readable without a token while `auth.public_symbol_reads` is on, else with `symbols:read`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::symbols::{answers_to, breakpad, one_module, require_symbol_read, stream_original};
use crate::app::App;
use crate::http::segment;
use crate::http::Caller;
use crate::http::HttpError;
use crate::symbols::identify::{base_name, DebugFileMeta};
use crate::symbols::ids::{parse_code_id, parse_debug_id};
use crate::symbols::SymbolQuery;
use crate::upstream::{ModulePlatform, ModuleRef, Purpose};
use symbolic::common::{CodeId, DebugId};

/// Asks the upstream sources that may serve debuggers for `module`'s files; whether one was
/// stored.
async fn fetched_upstream(state: &App, module: ModuleRef) -> bool {
    match &state.upstream {
        Some(upstream) if upstream.serves() => upstream
            .fetch(&module, Purpose::Serve)
            .await
            .origin
            .is_some(),
        _ => false,
    }
}

/// The module a debugger asks for by debug file name and debug ID.
fn by_debug_id(file: &str, debug_id: DebugId) -> ModuleRef {
    ModuleRef::new(debug_id, Some(file), None, None, ModulePlatform::Unknown)
}

/// The ELF module a debugger asks for by build ID.
fn by_build_id(code_id: &CodeId) -> Option<ModuleRef> {
    let debug_id = crate::symbols::ids::debug_id_from_build_id(code_id)?;
    Some(ModuleRef::new(
        debug_id,
        None,
        None,
        Some(code_id.clone()),
        ModulePlatform::Linux,
    ))
}

/// Which of a module's files a client wants.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    /// The file with debug info: a separate debug file first, else a binary that kept it.
    DebugInfo,
    /// The binary itself (stripped or not); never a debug-only companion.
    Executable,
}

/// The best stored file of `format` for `want` (a debug companion over a binary for debug
/// info; then the largest, then the newest).
fn best<'a>(files: &'a [DebugFileMeta], format: &str, want: Want) -> Option<&'a DebugFileMeta> {
    files
        .iter()
        .filter(|meta| meta.format == format)
        .filter_map(|meta| {
            let companion = meta.role == "dbg";
            let rank = match want {
                Want::DebugInfo if meta.features.debug => u8::from(companion) + 1,
                Want::DebugInfo => return None,
                Want::Executable if companion => return None,
                Want::Executable => 1,
            };
            Some((rank, meta))
        })
        .max_by_key(|(rank, meta)| (*rank, meta.size, meta.uploaded_at))
        .map(|(_, meta)| meta)
}

/// SSQP key prefixes: what follows each (an ELF build ID, a Mach-O UUID), which files answer,
/// and what they are called in a not-found answer.
const SSQP_KEYS: [(&str, &str, Want, &str); 4] = [
    ("elf-buildid-sym-", "elf", Want::DebugInfo, "ELF debug file"),
    ("elf-buildid-", "elf", Want::Executable, "ELF binary"),
    ("mach-uuid-sym-", "macho", Want::DebugInfo, "dSYM"),
    ("mach-uuid-", "macho", Want::Executable, "Mach-O binary"),
];

fn not_found(what: String) -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, what)
        .with_detail("upload it with `faultline upload` or POST /api/v1/symbols")
}

/// `GET /symbols/{file}/{key}/{name}`: a Breakpad `.sym`, or a file in Microsoft's
/// symbol-server layout.
pub async fn symbols(
    State(state): State<App>,
    caller: Caller,
    Path((file, key, name)): Path<(String, String, String)>,
) -> Result<Response, HttpError> {
    require_symbol_read(&state, &caller)?;
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".sym") {
        let mut found = breakpad(&state, &file, &key).await;
        if found
            .as_ref()
            .is_err_and(|e| e.status() == StatusCode::NOT_FOUND)
        {
            if let Ok(id) = parse_debug_id(&key) {
                if fetched_upstream(&state, by_debug_id(&file, id)).await {
                    found = breakpad(&state, &file, &key).await;
                }
            }
        }
        return match found {
            Err(e) if e.status() == StatusCode::NOT_FOUND => Ok(by_code_file(&state, &file, &key)
                .await?
                .unwrap_or(e.into_response())),
            other => other,
        };
    }
    // Cabinet-compressed names (`app.pd_`), and `file.ptr` redirections: clients ask for these
    // first and fall back to the plain file when told there is none.
    if lower.ends_with('_') || lower == "file.ptr" {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("{name} is not served (files are served uncompressed)"),
        )
        .with_detail(format!("request /symbols/{file}/{key}/{file}")));
    }
    let key = key.to_ascii_lowercase();
    // SSQP's prefixed keys; otherwise a PDB's GUID and age (its debug ID in Breakpad's
    // spelling), or a PE image's timestamp (8 hex digits) and size of image.
    let (prefix, format, want, what) = SSQP_KEYS
        .into_iter()
        .find(|(prefix, ..)| key.starts_with(prefix))
        .unwrap_or(if lower.ends_with(".pdb") {
            ("", "pdb", Want::DebugInfo, "PDB")
        } else {
            ("", "pe", Want::Executable, "PE image")
        });
    let id = &key[prefix.len()..];
    let upstream_module = match format {
        "elf" => by_build_id(&parse_code_id(id).map_err(bad_key)?),
        "pdb" => Some(by_debug_id(&file, parse_debug_id(id).map_err(bad_key)?)),
        _ => None,
    };
    let mut named = stored_named(&state, &file, format, id).await?;
    if best(&named, format, want).is_none() {
        if let Some(module) = upstream_module {
            if fetched_upstream(&state, module).await {
                named = stored_named(&state, &file, format, id).await?;
            }
        }
    }
    let meta = best(&named, format, want)
        .ok_or_else(|| not_found(format!("no {what} stored for {file} {key}")))?;
    stream_original(&state, meta, "application/octet-stream").await
}

/// The stored files answering to `file` with the key `id` (a code ID for ELF and PE files, a
/// debug ID otherwise).
async fn stored_named(
    state: &App,
    file: &str,
    format: &str,
    id: &str,
) -> Result<Vec<DebugFileMeta>, HttpError> {
    let files = match format {
        "elf" | "pe" => {
            let code_id = parse_code_id(id).map_err(bad_key)?;
            state.symbols.find(&SymbolQuery::CodeId(code_id)).await?
        }
        _ => {
            let debug_id = parse_debug_id(id).map_err(bad_key)?;
            state.symbols.find(&SymbolQuery::DebugId(debug_id)).await?
        }
    };
    let of_format: Vec<&DebugFileMeta> = files.iter().filter(|m| m.format == format).collect();
    let named: Vec<DebugFileMeta> = of_format
        .iter()
        .filter(|meta| {
            // SSQP's `_.debug` / `_.dwarf` stand for any name.
            file.starts_with("_.") || answers_to(meta, file)
        })
        .map(|meta| (*meta).clone())
        .collect();
    // Found by its ID but uploaded under another name: the module's files are the candidates.
    if named.is_empty() {
        return Ok(one_module(&of_format)
            .iter()
            .map(|meta| (*meta).clone())
            .collect());
    }
    Ok(named)
}

/// Tecken's code-ID fallback: `/{code_file}/{code_id}/{name}.sym` (what a client knows of a
/// Windows module whose PDB it never saw) redirects to the debug-ID path of the module's
/// stored `.sym`, when one answers to that code file and code ID.
async fn by_code_file(
    state: &App,
    code_file: &str,
    code_id: &str,
) -> Result<Option<Response>, HttpError> {
    let Ok(id) = parse_code_id(code_id) else {
        return Ok(None);
    };
    let files = state.symbols.find(&SymbolQuery::CodeId(id)).await?;
    let Some(sym) = files.iter().find(|meta| {
        meta.format == "breakpad"
            && meta
                .code_file
                .as_deref()
                .is_some_and(|c| base_name(c).eq_ignore_ascii_case(base_name(code_file)))
    }) else {
        return Ok(None);
    };
    let Some(debug_file) = sym.debug_file.as_deref().map(base_name) else {
        return Ok(None);
    };
    let Ok(debug_id) = parse_debug_id(&sym.debug_id) else {
        return Ok(None);
    };
    // Breakpad names a PDB's symbol file without `.pdb` (`xul.pdb/…/xul.sym`).
    let stem = match debug_file.len().checked_sub(4) {
        Some(cut) if debug_file.to_ascii_lowercase().ends_with(".pdb") => &debug_file[..cut],
        _ => debug_file,
    };
    let location = format!(
        "/symbols/{}/{}/{}.sym",
        segment(debug_file),
        debug_id.breakpad(),
        segment(stem)
    );
    Ok(Some(Redirect::to(&location).into_response()))
}

fn bad_key(reason: String) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, reason)
}

/// `GET /buildid/{build_id}/{artifact}`: `debuginfo` or `executable`; `source/…` and
/// `section/…` are answered as not found (no sources are indexed by build ID).
pub async fn debuginfod(
    State(state): State<App>,
    caller: Caller,
    Path((build_id, artifact)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    require_symbol_read(&state, &caller)?;
    let (want, what) = match artifact.as_str() {
        "debuginfo" => (Want::DebugInfo, "ELF debug file"),
        "executable" => (Want::Executable, "ELF executable"),
        other if other.starts_with("source/") => {
            return debuginfod_source(&state, &build_id, &other["source".len()..]).await
        }
        other => {
            let kind = other.split('/').next().unwrap_or_default();
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                format!("debuginfod {kind:?} requests are not served"),
            )
            .with_detail(
                "faultline serves /buildid/{BUILD_ID}/debuginfo, /executable and /source/{PATH}",
            ));
        }
    };
    let code_id = parse_code_id(&build_id).map_err(|e| {
        HttpError::new(StatusCode::BAD_REQUEST, e)
            .with_detail("a GNU build ID is hex, as `readelf -n` or `file` prints it")
    })?;
    let mut files = state
        .symbols
        .find(&SymbolQuery::CodeId(code_id.clone()))
        .await?;
    if best(&files, "elf", want).is_none() {
        if let Some(module) = by_build_id(&code_id) {
            if fetched_upstream(&state, module).await {
                files = state.symbols.find(&SymbolQuery::CodeId(code_id)).await?;
            }
        }
    }
    let meta = best(&files, "elf", want)
        .ok_or_else(|| not_found(format!("no {what} stored for build ID {build_id}")))?;
    let mut response = stream_original(&state, meta, "application/octet-stream").await?;
    let headers = response.headers_mut();
    headers.insert("x-debuginfod-size", HeaderValue::from(meta.size));
    // The name the file was uploaded under, as a header value can carry it.
    let file: String = meta
        .uploaded_name
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("/{}", file.trim_start_matches('/'))) {
        headers.insert("x-debuginfod-file", value);
    }
    headers.remove(header::CONTENT_DISPOSITION);
    Ok(response)
}

/// `GET /buildid/{BUILD_ID}/source/{PATH}`: a source file of the module with that build ID, from
/// a source bundle (or embedded sources) stored for it; `PATH` is absolute, as the debug
/// information names the file (debuginfod clients send it percent-encoded, `/` kept).
async fn debuginfod_source(state: &App, build_id: &str, path: &str) -> Result<Response, HttpError> {
    let code_id =
        parse_code_id(build_id).map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e))?;
    let modules: std::collections::BTreeSet<String> = state
        .symbols
        .find(&SymbolQuery::CodeId(code_id))
        .await?
        .into_iter()
        .map(|f| f.debug_id)
        .collect();
    for module in modules {
        let Ok(debug_id) = module.parse() else {
            continue;
        };
        if let Some(text) = state
            .symbols
            .source_file(&debug_id, path)
            .await?
            .and_then(|source| source.text)
        {
            let mut response = (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text.clone(),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert("x-debuginfod-size", HeaderValue::from(text.len()));
            if let Ok(value) = HeaderValue::from_str(path) {
                headers.insert("x-debuginfod-file", value);
            }
            return Ok(response);
        }
    }
    Err(not_found(format!(
        "no stored sources of build ID {build_id} hold {path}"
    ))
    .with_detail("upload a source bundle (sentry-cli debug-files bundle-sources) for the module"))
}
