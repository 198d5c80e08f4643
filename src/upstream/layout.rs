//! Where a source keeps a module's files: the paths each layout gives a module for each kind of
//! file (Microsoft's symbol server, Breakpad, GDB/LLDB folders, SSQP, Sentry's unified layout,
//! debuginfod). Module names come from crash reports: only a plain base name is ever put in a
//! path ([`safe_base_name`]), so no report can point a lookup elsewhere.

use symbolic::common::{CodeId, DebugId};

use crate::config::{SourceFileType, SourceLayout};

/// The platform a module was built for, which decides which kinds of file it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModulePlatform {
    /// PE executables with PDB debug files.
    Windows,
    /// ELF files.
    Linux,
    /// Mach-O files.
    Apple,
    /// Not known: only Breakpad files are asked for.
    Unknown,
}

/// A module of a crash as a source is asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    /// The debug ID every stored file is keyed by.
    pub debug_id: DebugId,
    /// The debug file's base name (`kernel32.pdb`, `libc.so.6`).
    pub debug_file: Option<String>,
    /// The code file's base name (`kernel32.dll`).
    pub code_file: Option<String>,
    /// The code ID (PE timestamp and size, ELF build ID, Mach-O UUID), lowercase.
    pub code_id: Option<CodeId>,
    /// Which kinds of file it has.
    pub platform: ModulePlatform,
}

impl ModuleRef {
    /// A module named by a crash report: paths are reduced to safe base names, and the platform
    /// is guessed from the names when the report does not say it.
    pub fn new(
        debug_id: DebugId,
        debug_file: Option<&str>,
        code_file: Option<&str>,
        code_id: Option<CodeId>,
        platform: ModulePlatform,
    ) -> ModuleRef {
        let debug_file = debug_file.and_then(safe_base_name);
        let code_file = code_file.and_then(safe_base_name);
        let platform = match platform {
            ModulePlatform::Unknown => guess_platform(debug_file.as_deref(), code_file.as_deref()),
            known => known,
        };
        ModuleRef {
            debug_id,
            debug_file,
            code_file,
            code_id,
            platform,
        }
    }

    /// The kinds of file this module has, in the order they are asked for.
    pub fn file_types(&self) -> impl Iterator<Item = SourceFileType> + '_ {
        SourceFileType::ALL.into_iter().filter(|t| {
            use SourceFileType::*;
            match self.platform {
                ModulePlatform::Windows => matches!(t, Pdb | Pe | Breakpad | Sourcebundle),
                ModulePlatform::Linux => matches!(t, ElfDebug | ElfCode | Breakpad | Sourcebundle),
                ModulePlatform::Apple => {
                    matches!(t, MachoDebug | MachoCode | Breakpad | Sourcebundle)
                }
                ModulePlatform::Unknown => *t == Breakpad,
            }
        })
    }

    /// The name shown for the module (its debug file, else its code file, else its ID).
    pub fn display_name(&self) -> String {
        self.debug_file
            .clone()
            .or_else(|| self.code_file.clone())
            .unwrap_or_else(|| self.debug_id.to_string())
    }
}

fn guess_platform(debug_file: Option<&str>, code_file: Option<&str>) -> ModulePlatform {
    let lower = |n: Option<&str>| n.map(str::to_ascii_lowercase).unwrap_or_default();
    let (debug, code) = (lower(debug_file), lower(code_file));
    if debug.ends_with(".pdb") || code.ends_with(".dll") || code.ends_with(".exe") {
        ModulePlatform::Windows
    } else if code.contains(".so") || debug.contains(".so") || debug.ends_with(".debug") {
        ModulePlatform::Linux
    } else if code.ends_with(".dylib") || debug.ends_with(".dylib") {
        ModulePlatform::Apple
    } else {
        ModulePlatform::Unknown
    }
}

/// The last component of a path from a crash report (`C:\Windows\System32\ntdll.dll` →
/// `ntdll.dll`), or `None` when what remains could name something other than a file in the
/// module's folder (empty, `.`, `..`, control characters, over 255 bytes).
pub fn safe_base_name(path: &str) -> Option<String> {
    let base = crate::symbols::identify::base_name(path).trim();
    let ok = !base.is_empty()
        && base != "."
        && base != ".."
        && base.len() <= 255
        && !base.chars().any(|c| c.is_control() || c == ':');
    ok.then(|| base.to_owned())
}

/// The paths (relative to the source's root, `/`-separated) where `layout` keeps the file of
/// kind `file_type` for `module`; empty when the layout has no place for it or the module lacks
/// the name or ID the path needs.
pub fn paths(layout: SourceLayout, file_type: SourceFileType, module: &ModuleRef) -> Vec<String> {
    use SourceLayout::*;
    match layout {
        Native => native(file_type, module),
        Symstore => symstore(file_type, module, false).into_iter().collect(),
        Ssqp => symstore(file_type, module, true).into_iter().collect(),
        SymstoreIndex2 => symstore(file_type, module, false)
            .map(|path| {
                let prefix: String = path.chars().take(2).collect();
                let prefix = prefix.trim_end_matches(['/', '.']).to_owned();
                format!("{prefix}/{path}")
            })
            .into_iter()
            .collect(),
        Unified => unified(file_type, module).into_iter().collect(),
        Debuginfod => debuginfod(file_type, module).into_iter().collect(),
    }
}

/// `TIMESTAMPsizeofimage` of a PE code ID, as Microsoft's server spells it.
fn pe_code_id(code_id: &CodeId) -> Option<String> {
    let id = code_id.as_str();
    let (timestamp, size) = (id.get(..8)?, id.get(8..)?);
    Some(format!(
        "{}{}",
        timestamp.to_ascii_uppercase(),
        size.to_ascii_lowercase()
    ))
}

/// A PDB's symstore folder name: the GUID in uppercase hex, then the age in hex.
fn pdb_id(debug_id: &DebugId) -> String {
    format!("{:X}{:x}", debug_id.uuid().as_simple(), debug_id.appendix())
}

fn symstore(file_type: SourceFileType, module: &ModuleRef, ssqp: bool) -> Option<String> {
    use SourceFileType::*;
    let code_file = || module.code_file.as_deref();
    let path = match file_type {
        Pdb | Portablepdb => {
            let name = module.debug_file.as_deref()?;
            format!("{name}/{}/{name}", pdb_id(&module.debug_id))
        }
        Pe => {
            let name = code_file()?;
            format!("{name}/{}/{name}", pe_code_id(module.code_id.as_ref()?)?)
        }
        ElfCode => {
            let name = code_file()?;
            format!("{name}/elf-buildid-{}/{name}", module.code_id.as_ref()?)
        }
        ElfDebug => format!(
            "_.debug/elf-buildid-sym-{}/_.debug",
            module.code_id.as_ref()?
        ),
        MachoCode => {
            let name = code_file()?;
            format!("{name}/mach-uuid-{}/{name}", mach_uuid(module))
        }
        MachoDebug => format!("_.dwarf/mach-uuid-sym-{}/_.dwarf", mach_uuid(module)),
        Breakpad => breakpad(module)?,
        Sourcebundle if module.platform == ModulePlatform::Windows => {
            with_extension(&symstore(Pdb, module, false)?, "src.zip")
        }
        Sourcebundle => return None,
    };
    Some(if ssqp { path.to_lowercase() } else { path })
}

/// Breakpad's `name/ID/name.sym` (the `.pdb`, `.exe` or `.dll` of the name dropped for the
/// file, as `dump_syms` names it).
fn breakpad(module: &ModuleRef) -> Option<String> {
    let name = module.debug_file.as_deref()?;
    let lower = name.to_ascii_lowercase();
    let stem = [".pdb", ".exe", ".dll"]
        .iter()
        .find(|ext| lower.ends_with(*ext))
        .map_or(name, |ext| &name[..name.len() - ext.len()]);
    Some(format!("{name}/{}/{stem}.sym", module.debug_id.breakpad()))
}

fn with_extension(path: &str, extension: &str) -> String {
    let file_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[file_start..].rfind('.') {
        Some(dot) => format!("{}.{extension}", &path[..file_start + dot]),
        None => format!("{path}.{extension}"),
    }
}

/// The Mach-O UUID: the code ID when given, else the debug ID's UUID, simple lowercase hex.
fn mach_uuid(module: &ModuleRef) -> String {
    module
        .code_id
        .as_ref()
        .map(|c| c.as_str().to_owned())
        .unwrap_or_else(|| module.debug_id.uuid().as_simple().to_string())
}

/// GDB's `.build-id` folder: `ab/cdef…`.
fn gdb(module: &ModuleRef) -> Option<String> {
    let id = module.code_id.as_ref()?.as_str();
    Some(format!("{}/{}", id.get(..2)?, id.get(2..)?))
}

/// LLDB's UUID folders: `ABCD/EF01/2345/6789/ABCDEF0123456789`.
fn lldb(module: &ModuleRef) -> String {
    let hex = mach_uuid(module).to_ascii_uppercase();
    let mut path = String::with_capacity(40);
    for (i, chunk) in hex.as_bytes().chunks(4).enumerate() {
        if i > 0 && i <= 4 {
            path.push('/');
        }
        path.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    path
}

fn native(file_type: SourceFileType, module: &ModuleRef) -> Vec<String> {
    use SourceFileType::*;
    let path = match file_type {
        ElfCode => gdb(module),
        ElfDebug => gdb(module).map(|p| p + ".debug"),
        MachoCode => Some(lldb(module) + ".app"),
        MachoDebug => Some(lldb(module)),
        Pdb | Portablepdb | Pe => symstore(file_type, module, false),
        Breakpad => breakpad(module),
        Sourcebundle => breakpad(module).map(|p| with_extension(&p, "src.zip")),
    };
    path.into_iter().collect()
}

fn unified(file_type: SourceFileType, module: &ModuleRef) -> Option<String> {
    use SourceFileType::*;
    let suffix = match file_type {
        Pe | ElfCode | MachoCode => "executable",
        Pdb | Portablepdb | ElfDebug | MachoDebug => "debuginfo",
        Breakpad => "breakpad",
        Sourcebundle => "sourcebundle",
    };
    let id = match module.platform {
        ModulePlatform::Windows | ModulePlatform::Unknown => {
            module.debug_id.breakpad().to_string().to_ascii_lowercase()
        }
        ModulePlatform::Linux => module.code_id.as_ref()?.as_str().to_owned(),
        ModulePlatform::Apple => mach_uuid(module),
    };
    Some(format!("{}/{}/{suffix}", id.get(..2)?, id.get(2..)?))
}

fn debuginfod(file_type: SourceFileType, module: &ModuleRef) -> Option<String> {
    let id = module.code_id.as_ref()?;
    match file_type {
        SourceFileType::ElfDebug => Some(format!("buildid/{id}/debuginfo")),
        SourceFileType::ElfCode => Some(format!("buildid/{id}/executable")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel32() -> ModuleRef {
        ModuleRef::new(
            "3844dbb9-2017-4967-be7a-a4a2c20430fa-2".parse().unwrap(),
            Some("C:\\Windows\\System32\\wkernel32.pdb"),
            Some("C:\\Windows\\System32\\KERNEL32.dll"),
            Some(CodeId::new("590285E9e0000".into())),
            ModulePlatform::Unknown,
        )
    }

    #[test]
    fn a_windows_module_is_asked_for_as_microsofts_server_spells_it() {
        let module = kernel32();
        assert_eq!(module.platform, ModulePlatform::Windows);
        assert_eq!(
            paths(SourceLayout::Symstore, SourceFileType::Pdb, &module),
            ["wkernel32.pdb/3844DBB920174967BE7AA4A2C20430FA2/wkernel32.pdb"]
        );
        assert_eq!(
            paths(SourceLayout::Symstore, SourceFileType::Pe, &module),
            ["KERNEL32.dll/590285E9e0000/KERNEL32.dll"]
        );
        assert_eq!(
            paths(SourceLayout::SymstoreIndex2, SourceFileType::Pdb, &module),
            ["wk/wkernel32.pdb/3844DBB920174967BE7AA4A2C20430FA2/wkernel32.pdb"]
        );
        assert_eq!(
            paths(SourceLayout::Ssqp, SourceFileType::Pe, &module),
            ["kernel32.dll/590285e9e0000/kernel32.dll"]
        );
        assert_eq!(
            paths(SourceLayout::Native, SourceFileType::Breakpad, &module),
            ["wkernel32.pdb/3844DBB920174967BE7AA4A2C20430FA2/wkernel32.sym"]
        );
        assert_eq!(
            paths(SourceLayout::Unified, SourceFileType::Pdb, &module),
            ["38/44dbb920174967be7aa4a2c20430fa2/debuginfo"]
        );
        assert!(paths(SourceLayout::Debuginfod, SourceFileType::Pdb, &module).is_empty());
    }

    #[test]
    fn an_elf_module_is_asked_for_by_build_id() {
        let module = ModuleRef::new(
            "e4b7a7f1-c8f3-fb25-c2a8-3c7d5c7cd6b9".parse().unwrap(),
            Some("/lib/x86_64-linux-gnu/libc.so.6"),
            Some("/lib/x86_64-linux-gnu/libc.so.6"),
            Some(CodeId::new(
                "f1a7b7e4f3c825fbc2a83c7d5c7cd6b9a1b2c3d4".into(),
            )),
            ModulePlatform::Linux,
        );
        let types: Vec<_> = module.file_types().collect();
        assert_eq!(
            types,
            [
                SourceFileType::ElfDebug,
                SourceFileType::Breakpad,
                SourceFileType::ElfCode,
                SourceFileType::Sourcebundle
            ]
        );
        assert_eq!(
            paths(SourceLayout::Debuginfod, SourceFileType::ElfDebug, &module),
            ["buildid/f1a7b7e4f3c825fbc2a83c7d5c7cd6b9a1b2c3d4/debuginfo"]
        );
        assert_eq!(
            paths(SourceLayout::Native, SourceFileType::ElfDebug, &module),
            ["f1/a7b7e4f3c825fbc2a83c7d5c7cd6b9a1b2c3d4.debug"]
        );
        assert_eq!(
            paths(SourceLayout::Symstore, SourceFileType::ElfCode, &module),
            ["libc.so.6/elf-buildid-f1a7b7e4f3c825fbc2a83c7d5c7cd6b9a1b2c3d4/libc.so.6"]
        );
    }

    #[test]
    fn names_from_a_report_never_leave_the_module_folder() {
        assert_eq!(safe_base_name("../../etc/passwd"), Some("passwd".into()));
        assert_eq!(safe_base_name("C:\\x\\.."), None);
        assert_eq!(safe_base_name("a/"), None);
        assert_eq!(safe_base_name("evil\u{0}.pdb"), None);
        assert_eq!(safe_base_name("c:evil.pdb"), None);
    }
}
