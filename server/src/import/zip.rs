//! Reading the zip archives the original release manager stored its builds
//! in (Go's `archive/zip` writer: one entry per file, deflated, sizes and
//! CRC in a data descriptor after each entry and in the central directory).
//! Entries are read through the central directory, so both that layout and
//! archives whose local headers carry the sizes read alike.
//!
//! It owns the archive format only: which files a build keeps is decided
//! by its caller. It bounds what an archive may unpack to, and checks each
//! entry's CRC-32.

use std::io::Read;

/// Most bytes one archive may unpack to.
pub(crate) const MAX_UNPACKED_BYTES: u64 = 256 << 20;
/// Most entries one archive may hold.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// One file of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its path in the archive (`/`-separated).
    pub(crate) name: String,
    /// Its contents.
    pub(crate) data: Vec<u8>,
}

/// The files of the zip archive `bytes` (folder entries left out).
pub(crate) fn read(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let end =
        find_end_of_directory(bytes).ok_or("not a zip archive (no end of central directory)")?;
    let count = u16_at(bytes, end + 10)? as usize;
    let directory_size = u32_at(bytes, end + 12)? as usize;
    let directory_start = u32_at(bytes, end + 16)? as usize;
    if count == 0xFFFF || directory_start == 0xFFFF_FFFF {
        return Err("a zip64 archive, larger than any build".to_string());
    }
    if count > MAX_ENTRIES {
        return Err(format!("{count} entries, more than {MAX_ENTRIES}"));
    }
    if directory_start
        .checked_add(directory_size)
        .is_none_or(|e| e > bytes.len())
    {
        return Err("the central directory lies outside the archive".to_string());
    }
    let mut entries = Vec::with_capacity(count);
    let mut unpacked = 0u64;
    let mut at = directory_start;
    for _ in 0..count {
        if u32_at(bytes, at)? != 0x0201_4b50 {
            return Err("a broken central directory entry".to_string());
        }
        let flags = u16_at(bytes, at + 8)?;
        let method = u16_at(bytes, at + 10)?;
        let crc = u32_at(bytes, at + 16)?;
        let packed = u32_at(bytes, at + 20)? as usize;
        let size = u32_at(bytes, at + 24)? as u64;
        let name_len = u16_at(bytes, at + 28)? as usize;
        let extra_len = u16_at(bytes, at + 30)? as usize;
        let comment_len = u16_at(bytes, at + 32)? as usize;
        let local = u32_at(bytes, at + 42)? as usize;
        let name_bytes = slice(bytes, at + 46, name_len)?;
        at += 46 + name_len + extra_len + comment_len;
        let name = String::from_utf8(name_bytes.to_vec())
            .map_err(|_| "an entry whose name is not UTF-8".to_string())?;
        if flags & 1 != 0 {
            return Err(format!("{name}: encrypted"));
        }
        if name.ends_with('/') {
            continue;
        }
        unpacked += size;
        if unpacked > MAX_UNPACKED_BYTES {
            return Err(format!("unpacks to more than {MAX_UNPACKED_BYTES} bytes"));
        }
        if u32_at(bytes, local)? != 0x0403_4b50 {
            return Err(format!("{name}: a broken local header"));
        }
        let local_name = u16_at(bytes, local + 26)? as usize;
        let local_extra = u16_at(bytes, local + 28)? as usize;
        let packed_data = slice(bytes, local + 30 + local_name + local_extra, packed)?;
        let data = match method {
            0 => packed_data.to_vec(),
            8 => {
                let mut out = Vec::with_capacity(size as usize);
                flate2::read::DeflateDecoder::new(packed_data)
                    .take(size + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("{name}: cannot inflate: {e}"))?;
                out
            }
            other => return Err(format!("{name}: compression method {other} is not read")),
        };
        if data.len() as u64 != size {
            return Err(format!(
                "{name}: {} bytes, the directory says {size}",
                data.len()
            ));
        }
        if crc32fast::hash(&data) != crc {
            return Err(format!("{name}: CRC-32 mismatch"));
        }
        entries.push(Entry { name, data });
    }
    Ok(entries)
}

/// The offset of the end-of-central-directory record (it ends the archive,
/// followed by a comment of at most 64 KiB).
fn find_end_of_directory(bytes: &[u8]) -> Option<usize> {
    let earliest = bytes.len().saturating_sub(22 + 0xFFFF);
    (earliest..=bytes.len().checked_sub(22)?)
        .rev()
        .find(|&at| bytes[at..at + 4] == [0x50, 0x4b, 0x05, 0x06])
}

fn slice(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], String> {
    bytes
        .get(at..at.checked_add(len).ok_or("a truncated archive")?)
        .ok_or_else(|| "a truncated archive".to_string())
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    let b = slice(bytes, at, 2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    let b = slice(bytes, at, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A zip archive as Go's `archive/zip` `Writer.Create` writes one:
    /// deflated entries, flag 0x8 with zero CRC and sizes in the local
    /// header, a data descriptor after each entry, then the central
    /// directory (the layout of the original's `zipFiles`).
    pub(crate) fn go_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut directory = Vec::new();
        for (name, data) in files {
            let mut deflater =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            deflater.write_all(data).unwrap();
            let packed = deflater.finish().unwrap();
            let crc = crc32fast::hash(data);
            let offset = out.len() as u32;
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes()); // version needed
            out.extend_from_slice(&0x0808u16.to_le_bytes()); // descriptor, UTF-8
            out.extend_from_slice(&8u16.to_le_bytes()); // deflate
            out.extend_from_slice(&[0; 4]); // time, date
            out.extend_from_slice(&[0; 12]); // crc, sizes: in the descriptor
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&packed);
            out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            directory.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            directory.extend_from_slice(&20u16.to_le_bytes()); // made by
            directory.extend_from_slice(&20u16.to_le_bytes());
            directory.extend_from_slice(&0x0808u16.to_le_bytes());
            directory.extend_from_slice(&8u16.to_le_bytes());
            directory.extend_from_slice(&[0; 4]);
            directory.extend_from_slice(&crc.to_le_bytes());
            directory.extend_from_slice(&(packed.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(data.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
            directory.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attrs
            directory.extend_from_slice(&0o100644u32.wrapping_shl(16).to_le_bytes());
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(name.as_bytes());
        }
        let start = out.len() as u32;
        out.extend_from_slice(&directory);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn reads_what_gos_writer_writes() {
        let zip = go_zip(&[
            ("artifact.json", b"{\"id\": \"master-1\"}"),
            ("dev/deployment.yaml", b"kind: Deployment\n"),
            ("empty.txt", b""),
        ]);
        let entries = read(&zip).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["artifact.json", "dev/deployment.yaml", "empty.txt"]);
        assert_eq!(entries[1].data, b"kind: Deployment\n");
        assert!(entries[2].data.is_empty());
    }

    #[test]
    fn damage_is_reported() {
        let mut zip = go_zip(&[("a.yaml", b"some text that deflates")]);
        assert!(read(&zip[..zip.len() - 5]).is_err(), "truncated");
        // Flip a byte of the first entry's compressed data.
        zip[40] ^= 0xFF;
        assert!(read(&zip).is_err());
        assert!(read(b"PK not really").is_err());
    }
}
