//! A .NET assembly built with `<DebugType>embedded</DebugType>` carries its portable PDB inside
//! the PE (a debug directory entry of type 17: `MPDB`, the PDB's size, the PDB deflated). The
//! PDB is taken out at upload and stored as a debug file of its own, under the debug ID the
//! assembly and its PDB share, as sentry-cli does before it uploads one: every reader of
//! portable PDBs (frames by IL offset, embedded sources) then finds it like an uploaded one.

use std::io::{self, Write};
use std::sync::Arc;

use symbolic::common::ByteView;
use symbolic::debuginfo::pe::PeObject;

use super::identify::{base_name, IdentifiedObject};
use super::{identify_file, FileReport, SymbolStore};
use crate::cpu;

/// The largest embedded PDB taken out of an assembly, by the bytes it inflates to (a PDB
/// claiming more, or inflating past it, is refused, not truncated).
pub const MAX_EMBEDDED_PDB_BYTES: usize = 512 << 20;

/// A portable PDB found inside an assembly: the name it goes by and its bytes.
#[derive(Debug)]
pub struct EmbeddedPdb {
    /// The PDB's file name as the assembly's CodeView record names it (`App.pdb`).
    pub name: String,
    /// The PDB, inflated.
    pub bytes: Vec<u8>,
}

/// The portable PDB embedded in the PE file `data`, if it carries one. `Err` says why a PDB
/// the assembly claims to carry could not be taken out.
pub fn embedded_portable_pdb(data: &[u8]) -> Result<Option<EmbeddedPdb>, String> {
    let Ok(pe) = PeObject::parse(data) else {
        return Ok(None);
    };
    let Some(embedded) = pe
        .embedded_ppdb()
        .map_err(|e| format!("its embedded portable PDB is unreadable: {e}"))?
    else {
        return Ok(None);
    };
    if embedded.get_size() > MAX_EMBEDDED_PDB_BYTES {
        return Err(format!(
            "its embedded portable PDB claims {} bytes, more than the {MAX_EMBEDDED_PDB_BYTES} taken out",
            embedded.get_size()
        ));
    }
    let mut bytes = Bounded {
        // The claimed size is the file's word: reserve little up front, grow as it inflates.
        out: Vec::with_capacity(embedded.get_size().min(16 << 20)),
        limit: MAX_EMBEDDED_PDB_BYTES,
    };
    embedded
        .decompress_to(&mut bytes)
        .map_err(|e| format!("its embedded portable PDB does not inflate: {e}"))?;
    let name = pe
        .debug_file_name()
        .map(|path| base_name(&path).to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "embedded.pdb".to_owned());
    Ok(Some(EmbeddedPdb {
        name,
        bytes: bytes.out,
    }))
}

/// A buffer that refuses to grow past `limit`, whatever the header claimed.
struct Bounded {
    out: Vec<u8>,
    limit: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(io::Error::other(format!(
                "it inflates past {} bytes",
                self.limit
            )));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SymbolStore {
    /// Stores the portable PDBs embedded in the assemblies among `objects` (found in the upload
    /// `uploaded`, whose bytes are `view`), each reported as `ASSEMBLY#PDB`.
    pub(super) async fn store_embedded_pdbs(
        &self,
        view: &Arc<ByteView<'static>>,
        objects: &[IdentifiedObject],
        uploaded: &str,
    ) -> Vec<FileReport> {
        let mut reports = Vec::new();
        for object in objects.iter().filter(|o| o.meta.format == "pe") {
            let (bytes, range) = (Arc::clone(view), object.range.clone());
            let found = match cpu::run(move || embedded_portable_pdb(&bytes[range])).await {
                Ok(Ok(Some(pdb))) => pdb,
                Ok(Ok(None)) => continue,
                Ok(Err(why)) => {
                    reports.push(FileReport::rejected(uploaded, why));
                    continue;
                }
                Err(e) => {
                    reports.push(FileReport::rejected(uploaded, e.to_string()));
                    continue;
                }
            };
            let mut stored = self.store_extracted(&found.name, found.bytes).await;
            for report in &mut stored {
                report.name = format!("{uploaded}#{}", found.name);
            }
            reports.extend(stored);
        }
        reports
    }

    /// Identifies and stores `bytes`, a file taken out of an upload, under its own `name`.
    async fn store_extracted(&self, name: &str, bytes: Vec<u8>) -> Vec<FileReport> {
        let spooled = tempfile::NamedTempFile::new_in(self.scratch_root())
            .and_then(|mut file| file.write_all(&bytes).map(|()| file));
        let file = match spooled {
            Ok(file) => file,
            Err(e) => return vec![FileReport::rejected(name, format!("could not store: {e}"))],
        };
        match identify_file(file.path(), name).await {
            Ok(Ok((view, Ok(objects)))) => self.store_identified(&view, objects, name).await,
            Ok(Ok((_, Err(rejection)))) => vec![FileReport::rejected(name, rejection.to_string())],
            Ok(Err(e)) => vec![FileReport::rejected(name, format!("could not read: {e}"))],
            Err(e) => vec![FileReport::rejected(name, e.to_string())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_pe_carries_no_pdb() {
        assert!(embedded_portable_pdb(b"\x7fELF not really")
            .unwrap()
            .is_none());
        assert!(embedded_portable_pdb(b"").unwrap().is_none());
    }

    #[test]
    fn the_buffer_refuses_to_grow_past_its_bound() {
        let mut out = Bounded {
            out: Vec::new(),
            limit: 1500,
        };
        out.write_all(&[0; 1024]).unwrap();
        let err = out.write_all(&[0; 1024]).unwrap_err();
        assert!(err.to_string().contains("past 1500 bytes"), "{err}");
        assert_eq!(out.out.len(), 1024);
    }
}
