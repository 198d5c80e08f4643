//! Opening symbol-upload archives (zip, tar, tar.gz) safely: every entry is written to a
//! numbered scratch file (an entry's own path never touches the filesystem), entries with unsafe
//! paths or that are not regular files are refused one by one, and an archive whose entry count or
//! real uncompressed size passes the configured caps is refused whole before anything is stored.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// What an uploaded file is, judged by its first bytes (never by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// A zip archive (Tecken-style symbol zips, zipped dSYM bundles).
    Zip,
    /// An uncompressed tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
    /// Anything else: a single candidate debug file.
    Single,
}

/// Sniffs the upload kind from the file's first bytes.
pub fn sniff(path: &Path) -> io::Result<UploadKind> {
    let mut head = [0u8; 512];
    let mut file = File::open(path)?;
    let mut len = 0;
    while len < head.len() {
        let n = file.read(&mut head[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = &head[..len];
    Ok(
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            UploadKind::Zip
        } else if head.starts_with(&[0x1f, 0x8b]) {
            UploadKind::TarGz
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            UploadKind::Tar
        } else {
            UploadKind::Single
        },
    )
}

/// Caps that stop archive bombs.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Most entries (files, folders, links) one archive may list.
    pub max_entries: u64,
    /// Most bytes all entries may expand to, counted as they are really read.
    pub max_unpacked_bytes: u64,
}

/// One entry of an archive, as far as unpacking got.
#[derive(Debug)]
pub enum UnpackedEntry {
    /// A regular file, now in a scratch file.
    File {
        /// The entry's path in the archive.
        name: String,
        /// Where its bytes are.
        path: PathBuf,
    },
    /// An entry refused on its own (unsafe path, link, device).
    Rejected {
        /// The entry's path in the archive (control characters escaped).
        name: String,
        /// Why.
        reason: String,
    },
}

/// Why a whole archive was refused; nothing from it is stored.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// More entries than allowed.
    #[error("archive bomb refused: more than {0} entries (raise limits.max_archive_entries to allow it)")]
    TooManyEntries(u64),
    /// More uncompressed bytes than allowed.
    #[error("archive bomb refused: entries expand past {0} bytes (raise limits.max_archive_unpacked_bytes to allow it)")]
    TooLarge(u64),
    /// The archive itself could not be read.
    #[error("corrupt or truncated {kind} archive: {detail}")]
    Corrupt {
        /// `zip`, `tar` or `tar.gz`.
        kind: &'static str,
        /// What the reader said.
        detail: String,
    },
    /// The zip lists several entries under one name, so which one is meant is ambiguous.
    #[error("ambiguous zip archive refused: it lists {listed} entries under only {distinct} distinct names (remove the duplicates)")]
    DuplicateNames {
        /// Entries in the central directory.
        listed: u64,
        /// Distinct names among them.
        distinct: u64,
    },
    /// Local scratch space failed.
    #[error("could not write unpacked entry to scratch space: {0}")]
    Scratch(io::Error),
}

/// Why an entry's path is unsafe, or `None` if it is a plain relative path.
pub fn unsafe_path_reason(name: &str) -> Option<&'static str> {
    if name.chars().any(|c| c.is_control()) {
        return Some("unsafe path: contains control characters");
    }
    let bytes = name.as_bytes();
    if name.starts_with('/')
        || name.starts_with('\\')
        || (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':')
    {
        return Some("unsafe path: absolute");
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Some("unsafe path: contains '..'");
    }
    None
}

/// Unpacks `archive` of the given kind into numbered files under `scratch`.
pub fn unpack(
    archive: &Path,
    kind: UploadKind,
    scratch: &Path,
    limits: UnpackLimits,
) -> Result<Vec<UnpackedEntry>, UnpackError> {
    let mut budget = Budget {
        limits,
        entries: 0,
        bytes: 0,
    };
    let file = File::open(archive).map_err(UnpackError::Scratch)?;
    match kind {
        UploadKind::Zip => unpack_zip(file, scratch, &mut budget),
        UploadKind::Tar => unpack_tar(file, "tar", scratch, &mut budget),
        UploadKind::TarGz => unpack_tar(
            flate2::read::GzDecoder::new(file),
            "tar.gz",
            scratch,
            &mut budget,
        ),
        UploadKind::Single => Ok(Vec::new()),
    }
}

struct Budget {
    limits: UnpackLimits,
    entries: u64,
    bytes: u64,
}

impl Budget {
    fn count_entry(&mut self) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries(self.limits.max_entries));
        }
        Ok(())
    }

    /// Copies `reader` into a new scratch file, charging every byte against the budget.
    fn extract(
        &mut self,
        reader: &mut dyn Read,
        scratch: &Path,
        kind: &'static str,
    ) -> Result<PathBuf, UnpackError> {
        let path = scratch.join(format!("entry-{}", self.entries));
        let mut out = File::create(&path).map_err(UnpackError::Scratch)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(UnpackError::Corrupt {
                        kind,
                        detail: e.to_string(),
                    })
                }
            };
            self.bytes += n as u64;
            if self.bytes > self.limits.max_unpacked_bytes {
                return Err(UnpackError::TooLarge(self.limits.max_unpacked_bytes));
            }
            out.write_all(&buf[..n]).map_err(UnpackError::Scratch)?;
        }
        Ok(path)
    }
}

fn printable(name: &str) -> String {
    name.escape_debug().to_string()
}

fn unpack_zip(
    file: File,
    scratch: &Path,
    budget: &mut Budget,
) -> Result<Vec<UnpackedEntry>, UnpackError> {
    let corrupt = |e: zip::result::ZipError| UnpackError::Corrupt {
        kind: "zip",
        detail: e.to_string(),
    };
    let listed = listed_zip_entries(&file).map_err(UnpackError::Scratch)?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(corrupt)?;
    if zip.len() as u64 > budget.limits.max_entries {
        return Err(UnpackError::TooManyEntries(budget.limits.max_entries));
    }
    // The zip reader keeps one entry per name; a central directory that lists more is hiding
    // entries from it.
    if let Some(listed) = listed.filter(|n| *n > zip.len() as u64) {
        return Err(UnpackError::DuplicateNames {
            listed,
            distinct: zip.len() as u64,
        });
    }
    let mut out = Vec::new();
    for index in 0..zip.len() {
        budget.count_entry()?;
        let mut entry = zip.by_index(index).map_err(corrupt)?;
        let name = entry.name().to_owned();
        if let Some(reason) = unsafe_path_reason(&name) {
            out.push(UnpackedEntry::Rejected {
                name: printable(&name),
                reason: reason.to_owned(),
            });
            continue;
        }
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            out.push(UnpackedEntry::Rejected {
                name,
                reason: "not a regular file (symbolic link)".to_owned(),
            });
            continue;
        }
        let path = budget.extract(&mut entry, scratch, "zip")?;
        out.push(UnpackedEntry::File { name, path });
    }
    Ok(out)
}

/// The entry count in a zip's end-of-central-directory record (`None` when it is not found or
/// the archive is zip64, whose count lives elsewhere).
fn listed_zip_entries(file: &File) -> io::Result<Option<u64>> {
    use std::io::{Seek, SeekFrom};
    let mut file = file;
    let len = file.seek(SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    let Some(at) = tail
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .filter(|at| at + 22 <= tail.len())
    else {
        return Ok(None);
    };
    let total = u16::from_le_bytes([tail[at + 10], tail[at + 11]]);
    Ok((total != 0xffff).then_some(u64::from(total)))
}

fn unpack_tar(
    reader: impl Read,
    kind: &'static str,
    scratch: &Path,
    budget: &mut Budget,
) -> Result<Vec<UnpackedEntry>, UnpackError> {
    let corrupt = |e: io::Error| UnpackError::Corrupt {
        kind,
        detail: e.to_string(),
    };
    let mut tar = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in tar.entries().map_err(corrupt)? {
        budget.count_entry()?;
        let mut entry = entry.map_err(corrupt)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(reason) = unsafe_path_reason(&name) {
            out.push(UnpackedEntry::Rejected {
                name: printable(&name),
                reason: reason.to_owned(),
            });
            continue;
        }
        let entry_type = entry.header().entry_type();
        if entry_type.is_dir()
            || entry_type.is_pax_global_extensions()
            || entry_type.is_pax_local_extensions()
        {
            continue;
        }
        if !entry_type.is_file() {
            out.push(UnpackedEntry::Rejected {
                name,
                reason: "not a regular file (link or device)".to_owned(),
            });
            continue;
        }
        let path = budget.extract(&mut entry, scratch, kind)?;
        out.push(UnpackedEntry::File { name, path });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_named() {
        assert_eq!(unsafe_path_reason("a/b/c.sym"), None);
        assert_eq!(unsafe_path_reason("p%eter.sym"), None);
        assert!(unsafe_path_reason("/etc/passwd")
            .unwrap()
            .contains("absolute"));
        assert!(unsafe_path_reason("C:\\x.pdb")
            .unwrap()
            .contains("absolute"));
        assert!(unsafe_path_reason("a/../../x").unwrap().contains(".."));
        assert!(unsafe_path_reason("a\\..\\x").unwrap().contains(".."));
        assert!(unsafe_path_reason("a/b\u{7}c").unwrap().contains("control"));
    }
}
