//! What a source's answer may be wrapped in: a CAB archive (Microsoft's compressed `.pd_`,
//! `.ex_`, `.dl_`), gzip, zstd or a zip of one file. Each is unpacked to a scratch file of at
//! most the source's byte cap; anything else is taken as it is.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

/// The answer's bytes as the debug file itself: `file` unchanged, or a new scratch file with
/// its unpacked content. Runs on the CPU pool (decompression is CPU-bound).
pub fn unwrap(
    file: tempfile::NamedTempFile,
    scratch: &Path,
    max_bytes: u64,
) -> Result<tempfile::NamedTempFile, String> {
    let mut magic = [0u8; 4];
    let mut reader = File::open(file.path()).map_err(|e| e.to_string())?;
    let read = reader.read(&mut magic).map_err(|e| e.to_string())?;
    reader.rewind().map_err(|e| e.to_string())?;
    let magic = &magic[..read];
    let unpacked: Box<dyn Read> = if magic.starts_with(b"MSCF") {
        return first_cab_file(reader, scratch, max_bytes);
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::new(reader).map_err(|e| format!("zstd: {e}"))?)
    } else if magic.starts_with(b"PK\x03\x04") {
        return first_zip_file(reader, scratch, max_bytes);
    } else {
        return Ok(file);
    };
    copy_capped(unpacked, scratch, max_bytes)
}

fn copy_capped(
    reader: impl Read,
    scratch: &Path,
    max_bytes: u64,
) -> Result<tempfile::NamedTempFile, String> {
    let mut out = tempfile::NamedTempFile::new_in(scratch).map_err(|e| e.to_string())?;
    let copied = io::copy(&mut reader.take(max_bytes + 1), &mut out)
        .map_err(|e| format!("could not unpack: {e}"))?;
    if copied > max_bytes {
        return Err(format!(
            "unpacks to more than {max_bytes} bytes (max_download_bytes)"
        ));
    }
    Ok(out)
}

/// The first file of a cabinet (a compressed symstore file holds exactly one).
fn first_cab_file(
    reader: File,
    scratch: &Path,
    max_bytes: u64,
) -> Result<tempfile::NamedTempFile, String> {
    let mut cabinet = cab::Cabinet::new(reader).map_err(|e| format!("CAB: {e}"))?;
    let name = cabinet
        .folder_entries()
        .flat_map(|folder| folder.file_entries())
        .map(|entry| entry.name().to_owned())
        .next()
        .ok_or("CAB: the cabinet holds no file")?;
    let file = cabinet.read_file(&name).map_err(|e| format!("CAB: {e}"))?;
    copy_capped(file, scratch, max_bytes)
}

fn first_zip_file(
    reader: File,
    scratch: &Path,
    max_bytes: u64,
) -> Result<tempfile::NamedTempFile, String> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| format!("zip: {e}"))?;
    let index = (0..archive.len())
        .find(|i| archive.by_index(*i).is_ok_and(|f| f.is_file()))
        .ok_or("zip: the archive holds no file")?;
    let entry = archive.by_index(index).map_err(|e| format!("zip: {e}"))?;
    copy_capped(entry, scratch, max_bytes)
}
