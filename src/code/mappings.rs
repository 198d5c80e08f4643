//! Code mappings: where a frame's source path is in a repository. A mapping replaces a
//! `stack_root` prefix by a `source_root` (Sentry's rules: `\` read as `/`, a person's
//! mappings before derived ones, the longest stack root first). A mapping is derived when a
//! frame's path ends with a path that exists in the repository: the longest shared suffix
//! wins, and two files sharing it equally are shown as ambiguous, never guessed.

use serde::Serialize;

/// Who made a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MappingOrigin {
    /// A person, through the API or the UI: it wins over derived ones.
    User,
    /// faultline, from a frame's path and the repository's files.
    Derived,
}

impl MappingOrigin {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            MappingOrigin::User => "user",
            MappingOrigin::Derived => "derived",
        }
    }

    /// Read back.
    pub fn from_stored(text: &str) -> MappingOrigin {
        if text == "user" {
            MappingOrigin::User
        } else {
            MappingOrigin::Derived
        }
    }
}

/// One code mapping of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeMapping {
    /// ID.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// The repository's ID.
    pub repository_id: i64,
    /// The repository's name.
    pub repository: String,
    /// The prefix of frame paths (`/` separated; `C:/b/` for `C:\b\`).
    pub stack_root: String,
    /// What replaces it: a folder in the repository (`""` for its root).
    pub source_root: String,
    /// Who made it.
    pub origin: MappingOrigin,
}

impl CodeMapping {
    /// The repository path of a frame's path, if this mapping covers it.
    pub fn apply(&self, frame_path: &str) -> Option<String> {
        let path = normalize(frame_path);
        let root = normalize(&self.stack_root);
        let rest = strip_prefix(&path, &root)?;
        let rest = rest.trim_start_matches('/');
        let source_root = self.source_root.trim_matches('/');
        Some(if source_root.is_empty() {
            rest.to_owned()
        } else {
            format!("{source_root}/{rest}")
        })
    }
}

/// The mappings in the order they are tried: a person's first, then the longest stack root.
pub fn ordered(mut mappings: Vec<CodeMapping>) -> Vec<CodeMapping> {
    mappings.sort_by(|a, b| {
        (a.origin != MappingOrigin::User)
            .cmp(&(b.origin != MappingOrigin::User))
            .then(b.stack_root.len().cmp(&a.stack_root.len()))
            .then(a.id.cmp(&b.id))
    });
    mappings
}

/// The first mapping (in `ordered` order) that covers a frame's path, and the path it gives.
pub fn map_path<'a>(
    mappings: &'a [CodeMapping],
    frame_path: &str,
) -> Option<(&'a CodeMapping, String)> {
    mappings
        .iter()
        .find_map(|m| m.apply(frame_path).map(|path| (m, path)))
}

/// What deriving a mapping from one frame's path found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Derivation {
    /// One file of the repository shares the longest suffix with the frame's path.
    Found {
        /// The frame path's prefix before the shared suffix.
        stack_root: String,
        /// The repository path's prefix before it.
        source_root: String,
        /// The repository file.
        file: String,
    },
    /// Several files share it equally: shown, not guessed.
    Ambiguous {
        /// Those files.
        files: Vec<String>,
    },
    /// No file of the repository has the frame's file name.
    None,
}

/// Derives a mapping for a frame's path from the repository's files (at the release's commit).
pub fn derive(frame_path: &str, repository_files: &[String]) -> Derivation {
    let path = normalize(frame_path);
    let frame_parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some(name) = frame_parts.last() else {
        return Derivation::None;
    };
    let mut best = 0usize;
    let mut matches: Vec<&String> = Vec::new();
    for file in repository_files {
        if !file
            .rsplit('/')
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let shared = shared_suffix(&frame_parts, file);
        if shared > best {
            best = shared;
            matches.clear();
        }
        if shared == best && shared > 0 {
            matches.push(file);
        }
    }
    match matches.as_slice() {
        [] => Derivation::None,
        [file] => {
            let file_parts: Vec<&str> = file.split('/').collect();
            let source_root = file_parts[..file_parts.len() - best].join("/");
            let stack_parts = &frame_parts[..frame_parts.len() - best];
            let mut stack_root = stack_parts.join("/");
            if path.starts_with('/') {
                stack_root.insert(0, '/');
            }
            if !stack_root.is_empty() {
                stack_root.push('/');
            }
            Derivation::Found {
                stack_root,
                source_root,
                file: (*file).clone(),
            }
        }
        many => Derivation::Ambiguous {
            files: many.iter().map(|f| (*f).clone()).collect(),
        },
    }
}

/// How many trailing path components two paths share (names compared without case, as a
/// Windows build's paths may differ in case from the repository's).
fn shared_suffix(frame_parts: &[&str], file: &str) -> usize {
    frame_parts
        .iter()
        .rev()
        .zip(file.rsplit('/'))
        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
        .count()
}

/// A path with `\` read as `/`.
pub fn normalize(path: &str) -> String {
    path.replace('\\', "/")
}

/// `path` without `root`; a Windows path (drive letter) compares without case.
fn strip_prefix<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    if root.is_empty() {
        return Some(path);
    }
    let windows = root.as_bytes().get(1) == Some(&b':');
    let head = path.get(..root.len())?;
    let same = if windows {
        head.eq_ignore_ascii_case(root)
    } else {
        head == root
    };
    if !same {
        return None;
    }
    let rest = &path[root.len()..];
    // A root ends at a folder boundary: `/src` does not cover `/srcs/a.c`.
    (root.ends_with('/') || rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(id: i64, stack: &str, source: &str, origin: MappingOrigin) -> CodeMapping {
        CodeMapping {
            id,
            project_id: 1,
            repository_id: 1,
            repository: "acme/game".into(),
            stack_root: stack.into(),
            source_root: source.into(),
            origin,
        }
    }

    #[test]
    fn a_windows_path_derives_its_roots_from_the_longest_shared_suffix() {
        let files = vec![
            "src/net/conn.c".to_owned(),
            "tests/conn.c".to_owned(),
            "README.md".to_owned(),
        ];
        assert_eq!(
            derive(r"C:\b\src\net\conn.c", &files),
            Derivation::Found {
                stack_root: "C:/b/".into(),
                source_root: "".into(),
                file: "src/net/conn.c".into()
            }
        );
        assert_eq!(
            derive("/home/ci/build/game/net/conn.c", &files),
            Derivation::Found {
                stack_root: "/home/ci/build/game/".into(),
                source_root: "src".into(),
                file: "src/net/conn.c".into()
            }
        );
    }

    #[test]
    fn two_files_sharing_the_suffix_equally_are_ambiguous() {
        let files = vec!["a/util.c".to_owned(), "b/util.c".to_owned()];
        assert!(matches!(
            derive("/build/util.c", &files),
            Derivation::Ambiguous { files } if files.len() == 2
        ));
        assert_eq!(derive("/build/other.c", &files), Derivation::None);
    }

    #[test]
    fn a_persons_mapping_wins_then_the_longest_root() {
        let mappings = ordered(vec![
            mapping(1, "C:/b/", "", MappingOrigin::Derived),
            mapping(2, "C:/b/src/", "source/", MappingOrigin::Derived),
            mapping(3, "C:/b/src/net/", "netcode", MappingOrigin::User),
        ]);
        let (m, path) = map_path(&mappings, r"c:\b\src\net\conn.c").unwrap();
        assert_eq!((m.id, path.as_str()), (3, "netcode/conn.c"));
        let (m, path) = map_path(&mappings, r"C:\b\src\io\file.c").unwrap();
        assert_eq!((m.id, path.as_str()), (2, "source/io/file.c"));
        let unix = mapping(4, "/src", "", MappingOrigin::User);
        assert_eq!(unix.apply("/srcs/a.c"), None);
        assert_eq!(unix.apply("/src/a.c").as_deref(), Some("a.c"));
    }
}
