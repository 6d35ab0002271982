//! Small I/O helpers shared by the readers: opening with good errors and bounded reads.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::DataError;

/// Opens `path` for reading and returns the file with its length in bytes.
pub(crate) fn open(path: &Path) -> Result<(File, u64), DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, "cannot open", &e))?;
    let meta = file
        .metadata()
        .map_err(|e| DataError::io(path, "cannot read file metadata", &e))?;
    if meta.is_dir() {
        return Err(DataError::new(path, "is a directory, not a data file"));
    }
    Ok((file, meta.len()))
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads at most `limit` bytes. The buffer starts at `capacity` bytes (clamped to `limit`)
/// and otherwise grows only as data actually arrives, so a lying header cannot force a huge
/// allocation.
pub(crate) fn read_up_to<R: Read>(r: R, limit: u64, capacity: u64) -> io::Result<Vec<u8>> {
    let cap = usize::try_from(capacity.min(limit)).unwrap_or(0);
    let mut out = Vec::with_capacity(cap);
    r.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Converts a byte count to `usize`, or explains that it cannot be held in memory.
pub(crate) fn to_usize(path: &Path, bytes: u64) -> Result<usize, DataError> {
    usize::try_from(bytes).map_err(|_| {
        DataError::new(
            path,
            format!("{bytes} bytes of data do not fit in memory on this platform"),
        )
    })
}
