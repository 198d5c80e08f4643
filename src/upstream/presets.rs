//! The public symbol servers a user names instead of writing them out (`id = "microsoft"`):
//! the servers Sentry's symbolicator ships in its built-in list, with their layouts and
//! filters, plus the distributions' debuginfod servers. Nothing here is reached until a
//! configuration names it.

use crate::config::{SourceConfig, SourceFileType, SourceKind, SourceLayout};

/// A preset: how the server is reached and what it holds.
struct Preset {
    name: &'static str,
    kind: SourceKind,
    url: &'static str,
    layout: SourceLayout,
    filetypes: &'static [SourceFileType],
    path_patterns: &'static [&'static str],
}

use SourceFileType::{Breakpad, ElfCode, ElfDebug, Pdb, Pe, Portablepdb, Sourcebundle};

const WINDOWS: &[SourceFileType] = &[Pe, Pdb];

const PRESETS: &[Preset] = &[
    Preset {
        name: "microsoft",
        kind: SourceKind::Http,
        url: "https://msdl.microsoft.com/download/symbols/",
        layout: SourceLayout::Symstore,
        filetypes: &[Pe, Pdb, Portablepdb],
        path_patterns: &[],
    },
    Preset {
        name: "mozilla",
        kind: SourceKind::Http,
        url: "https://symbols.mozilla.org/",
        layout: SourceLayout::Symstore,
        filetypes: &[],
        path_patterns: &[],
    },
    Preset {
        name: "nvidia",
        kind: SourceKind::Http,
        url: "https://driver-symbols.nvidia.com/",
        layout: SourceLayout::Symstore,
        filetypes: WINDOWS,
        path_patterns: &[],
    },
    Preset {
        name: "intel",
        kind: SourceKind::Http,
        url: "https://software.intel.com/sites/downloads/symbols/",
        layout: SourceLayout::Symstore,
        filetypes: WINDOWS,
        path_patterns: &[],
    },
    Preset {
        name: "amd",
        kind: SourceKind::Http,
        url: "https://download.amd.com/dir/bin/",
        layout: SourceLayout::Symstore,
        filetypes: WINDOWS,
        path_patterns: &[],
    },
    Preset {
        name: "electron",
        kind: SourceKind::Http,
        url: "https://symbols.electronjs.org/",
        layout: SourceLayout::Native,
        filetypes: &[Pdb, Breakpad, Sourcebundle],
        path_patterns: &[
            "*electron*",
            "*ffmpeg*",
            "*libEGL*",
            "*libGLESv2*",
            "*node*",
            "*slack*",
            "*vk_swiftshader*",
        ],
    },
    Preset {
        name: "chromium",
        kind: SourceKind::Http,
        url: "https://chromium-browser-symsrv.commondatastorage.googleapis.com/",
        layout: SourceLayout::Symstore,
        filetypes: WINDOWS,
        path_patterns: &[],
    },
    Preset {
        name: "unity",
        kind: SourceKind::Http,
        url: "http://symbolserver.unity3d.com/",
        layout: SourceLayout::Symstore,
        filetypes: WINDOWS,
        path_patterns: &[],
    },
    Preset {
        name: "ubuntu-debuginfod",
        kind: SourceKind::Debuginfod,
        url: "https://debuginfod.ubuntu.com/",
        layout: SourceLayout::Debuginfod,
        filetypes: &[ElfDebug, ElfCode],
        path_patterns: &[],
    },
    Preset {
        name: "fedora-debuginfod",
        kind: SourceKind::Debuginfod,
        url: "https://debuginfod.fedoraproject.org/",
        layout: SourceLayout::Debuginfod,
        filetypes: &[ElfDebug, ElfCode],
        path_patterns: &[],
    },
    Preset {
        name: "debian-debuginfod",
        kind: SourceKind::Debuginfod,
        url: "https://debuginfod.debian.net/",
        layout: SourceLayout::Debuginfod,
        filetypes: &[ElfDebug, ElfCode],
        path_patterns: &[],
    },
];

/// The names of every preset, for error messages and documentation.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// `config` with what its preset says filled in where the entry says nothing: the preset it
/// names, or the one named like its `id` when it sets no `type`. An entry that is neither
/// complete nor a preset is an error naming what is missing.
pub fn resolve(config: &SourceConfig) -> Result<SourceConfig, String> {
    let wanted = match (&config.preset, config.kind) {
        (Some(name), _) => Some(name.as_str()),
        (None, None) => Some(config.id.as_str()),
        (None, Some(_)) => None,
    };
    let mut resolved = config.clone();
    if let Some(name) = wanted {
        let preset = PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
            format!(
                "symbols source {:?}: no preset named {name:?} (presets: {}); or set `type`",
                config.id,
                preset_names().join(", ")
            )
        })?;
        resolved.kind = resolved.kind.or(Some(preset.kind));
        resolved.url = resolved.url.or_else(|| Some(preset.url.to_owned()));
        resolved.layout = resolved.layout.or(Some(preset.layout));
        if resolved.filetypes.is_none() && !preset.filetypes.is_empty() {
            resolved.filetypes = Some(preset.filetypes.to_vec());
        }
        if resolved.path_patterns.is_none() && !preset.path_patterns.is_empty() {
            resolved.path_patterns =
                Some(preset.path_patterns.iter().map(|p| p.to_string()).collect());
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_a_preset_fills_in_the_server_and_its_filters() {
        let entry = SourceConfig {
            id: "microsoft".into(),
            ..SourceConfig::default()
        };
        let resolved = resolve(&entry).unwrap();
        assert_eq!(resolved.kind, Some(SourceKind::Http));
        assert_eq!(
            resolved.url.as_deref(),
            Some("https://msdl.microsoft.com/download/symbols/")
        );
        assert_eq!(resolved.layout, Some(SourceLayout::Symstore));
        assert_eq!(resolved.filetypes, Some(vec![Pe, Pdb, Portablepdb]));
        let electron = resolve(&SourceConfig {
            id: "electron-mirror".into(),
            preset: Some("electron".into()),
            url: Some("http://127.0.0.1:1/".into()),
            ..SourceConfig::default()
        })
        .unwrap();
        assert_eq!(electron.url.as_deref(), Some("http://127.0.0.1:1/"));
        assert!(electron
            .path_patterns
            .unwrap()
            .contains(&"*electron*".into()));
        let unknown = resolve(&SourceConfig {
            id: "microsfot".into(),
            ..SourceConfig::default()
        })
        .unwrap_err();
        assert!(
            unknown.contains("no preset named \"microsfot\""),
            "{unknown}"
        );
    }
}
