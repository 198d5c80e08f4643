//! Breakpad `.sym` files generated from the native debug files the store holds (a PDB with its
//! PE, an ELF binary with its debug companion, a dSYM with its binary) by Mozilla's dump_syms,
//! the generator Firefox's and Tecken's symbols come from. Stack walkers that read only `.sym`
//! files (minidump-stackwalk `--symbols-url`, Breakpad's processor) then get the same
//! functions, lines, inlines and unwind rules faultline uses. A module's file is generated on
//! first request and kept under `caches/{debug_id}/sym.v{SYM_VERSION}` like the other derived
//! files; storing or deleting one of the module's files drops it.

use std::io::Write;
use std::path::Path;

use dump_syms::object_info::ObjectInfo;
use dump_syms::platform::Platform;
use symbolic::common::{ByteView, DebugId};
use symbolic::debuginfo::Object;

use super::identify::DebugFileMeta;
use super::{SymbolError, SymbolStore};
use crate::cpu;
use crate::store::{ObjectKey, ObjectReader, PutBody};

/// Version of the generated `.sym` (part of its key): raise it when the generator's output
/// changes, so files generated before are not served.
pub const SYM_VERSION: u32 = 1;

/// Where a module's generated `.sym` is kept.
pub(super) fn sym_key(debug_id: &DebugId) -> ObjectKey {
    ObjectKey::new(format!("caches/{debug_id}/sym.v{SYM_VERSION}"))
        .expect("a debug ID makes a valid key")
}

/// The name the `.sym`'s MODULE line gives a file: the one crash reports carry.
fn module_name(meta: &DebugFileMeta) -> String {
    let name = match meta.format.as_str() {
        "pdb" => meta.debug_file.as_ref(),
        _ => meta.code_file.as_ref().or(meta.debug_file.as_ref()),
    };
    name.cloned().unwrap_or_else(|| meta.uploaded_name.clone())
}

/// Which stored files feed the generator: a PDB and its PE, or every ELF / Mach-O file of the
/// module (a binary and its debug companion are merged). Empty when none can.
fn inputs(files: &[DebugFileMeta]) -> Vec<&DebugFileMeta> {
    let largest = |format: &str| {
        files
            .iter()
            .filter(|f| f.format == format)
            .max_by_key(|f| f.size)
    };
    if let Some(pdb) = largest("pdb") {
        return [Some(pdb), largest("pe")].into_iter().flatten().collect();
    }
    files
        .iter()
        .filter(|f| matches!(f.format.as_str(), "elf" | "macho"))
        .collect()
}

/// Runs dump_syms over local copies of `inputs` (a PDB then its PE, or ELF / Mach-O files of
/// one module), writing the `.sym` to `out`.
pub fn generate(inputs: &[(DebugFileMeta, &Path)], out: &Path) -> Result<(), String> {
    let views = inputs
        .iter()
        .map(|(_, path)| ByteView::open(path).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let objects = views
        .iter()
        .map(|view| Object::parse(view).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let info = if let Some(Object::Pdb(_)) = objects.first() {
        let pe = objects.get(1);
        let pe_name = inputs.get(1).map(|(meta, _)| module_name(meta));
        ObjectInfo::from_object(
            &objects[0],
            &module_name(&inputs[0].0),
            pe,
            pe_name.as_deref(),
            Platform::Win,
            None,
            true,
        )
        .map_err(|e| e.to_string())?
    } else {
        let mut merged: Option<ObjectInfo> = None;
        for (object, (meta, _)) in objects.iter().zip(inputs) {
            let platform = match object {
                Object::MachO(_) => Platform::Mac,
                _ => Platform::Linux,
            };
            let info = ObjectInfo::from_object(
                object,
                &module_name(meta),
                None,
                None,
                platform,
                None,
                true,
            )
            .map_err(|e| e.to_string())?;
            merged = Some(match merged {
                Some(before) => ObjectInfo::merge(before, info).map_err(|e| e.to_string())?,
                None => info,
            });
        }
        merged.ok_or("no ELF or Mach-O file")?
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| e.to_string())?);
    info.dump(&mut file).map_err(|e| e.to_string())?;
    file.flush().map_err(|e| e.to_string())
}

impl SymbolStore {
    /// The module's `.sym` generated from its native files: the kept copy, or one generated now
    /// (and kept). `None` when the module has no file dump_syms reads.
    pub async fn generated_sym(
        &self,
        debug_id: &DebugId,
    ) -> Result<Option<ObjectReader>, SymbolError> {
        let key = sym_key(debug_id);
        if let Some(reader) = self.objects.get(&key).await? {
            return Ok(Some(reader));
        }
        let files = self.files_for(debug_id).await?;
        let chosen = inputs(&files);
        if chosen.is_empty() {
            return Ok(None);
        }
        let mut locals = Vec::with_capacity(chosen.len());
        for meta in &chosen {
            locals.push(((*meta).clone(), self.materialize(meta).await?));
        }
        let out = tempfile::NamedTempFile::new_in(&self.scratch)?;
        let out_path = out.path().to_owned();
        let generated = cpu::run(move || {
            let inputs: Vec<(DebugFileMeta, &Path)> = locals
                .iter()
                .map(|(meta, local)| (meta.clone(), local.path()))
                .collect();
            generate(&inputs, &out_path)
        })
        .await?;
        if let Err(detail) = generated {
            return Err(SymbolError::Unreadable {
                key: key.to_string(),
                detail: format!("dump_syms could not generate the .sym: {detail}"),
            });
        }
        self.objects
            .put_regenerable(&key, PutBody::File(out.path().to_owned()))
            .await?;
        Ok(self.objects.get(&key).await?)
    }
}
