//! Reading and writing whole files safely, for every crate that touches the user's disk.
//!
//! * [`read_regular`] reads a regular file of at most a given size. Devices, FIFOs and
//!   sockets are refused before they are opened (a FIFO would block, `/dev/zero` would
//!   never end), and a file that grows while it is read is cut off at the limit.
//! * [`write_atomically`] replaces a file so that a reader — or a later run after a crash
//!   or `kill -9` — sees either the complete old file or the complete new one: the bytes
//!   go to `<name>.tmp-<pid>` in the same folder, are synced, and the temporary file is
//!   renamed over the target. A symbolic link is followed deliberately (its target is
//!   replaced and the link stays); anything that is not a regular file — a device such
//!   as `/dev/null`, a FIFO, a socket, a folder — is refused rather than replaced.
//! * [`remove_stale_temporaries`] deletes the `.tmp-<pid>` files that a killed process
//!   left next to a target.
//! * [`check_writable`] tells before a long job whether [`write_atomically`] could
//!   write a target at all.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The largest source file the compiler reads (64 MiB).
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// What a path that exists but is not a regular file is, in words.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Reads all of `path`, which must be a regular file (symbolic links are followed) of
/// at most `limit` bytes. The error says what the path is when it is not a file.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(invalid(format!(
            "is {}, not a regular file",
            kind_of(&meta)
        )));
    }
    if meta.len() > limit {
        return Err(invalid(format!(
            "is {} bytes, more than the limit of {limit} bytes",
            meta.len()
        )));
    }
    let file = fs::File::open(path)?;
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(invalid(format!(
            "grew past the limit of {limit} bytes while it was read"
        )));
    }
    Ok(out)
}

/// Where [`write_atomically`] puts bytes meant for `path`: `path` itself, or the
/// target of the symbolic link(s) `path` names. Fails when the target exists and is
/// not a regular file.
pub fn resolve_target(path: &Path) -> io::Result<PathBuf> {
    let mut target = path.to_path_buf();
    // Follow links one by one (a dangling link names the file to create).
    for _ in 0..40 {
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let next = fs::read_link(&target)?;
                target = match target.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                };
            }
            Ok(meta) if meta.is_file() => return Ok(target),
            Ok(meta) => {
                return Err(invalid(format!(
                    "`{}` is {}; refusing to replace it with a file",
                    target.display(),
                    kind_of(&meta)
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(target),
            Err(e) => return Err(e),
        }
    }
    Err(invalid("too many levels of symbolic links".into()))
}

fn temporary_name(target: &Path, pid: u32) -> io::Result<PathBuf> {
    let Some(file_name) = target.file_name() else {
        return Err(invalid("the path does not name a file".into()));
    };
    let mut tmp = file_name.to_os_string();
    tmp.push(format!(".tmp-{pid}"));
    Ok(target.with_file_name(tmp))
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically (see the module documentation). On failure
/// nothing is left behind and the old file, if any, is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = resolve_target(path)?;
    let tmp = temporary_name(&target, std::process::id())?;
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; not every platform can sync a folder.
    if let Ok(d) = fs::File::open(folder_of(&target)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether a process with this id is running (always `false` where that cannot be
/// told, so that only files of dead processes are removed on Linux).
fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes `<name>.tmp-<pid>` files next to `path` left by processes that no longer
/// run (a `kill -9` or a power cut during [`write_atomically`]). Returns the files
/// removed.
pub fn remove_stale_temporaries(path: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if !Path::new("/proc/self").exists() {
        return removed;
    }
    let Ok(target) = resolve_target(path) else {
        return removed;
    };
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return removed;
    };
    let prefix = format!("{name}.tmp-");
    let Ok(entries) = fs::read_dir(folder_of(&target)) else {
        return removed;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !process_alive(pid) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let p = entry.path();
            if fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

/// Checks, without changing anything the user has, that [`write_atomically`] can write
/// `path`: the target is a regular file or absent, and a file can be created in its
/// folder (tried with a temporary file that is removed at once).
pub fn check_writable(path: &Path) -> io::Result<()> {
    let target = resolve_target(path)?;
    let dir = folder_of(&target);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(invalid(format!("`{}` is not a folder", dir.display())));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(invalid(format!(
                "the folder `{}` does not exist",
                dir.display()
            )));
        }
        Err(e) => return Err(e),
    }
    let probe = temporary_name(&target, std::process::id())?;
    fs::File::create(&probe)?;
    fs::remove_file(&probe)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn dir(name: &str) -> TempDir {
        TempDir::new(&format!("files-{name}"))
    }

    #[test]
    fn reads_regular_files_within_the_limit() {
        let d = dir("read");
        let p = d.path().join("a.txt");
        fs::write(&p, "hello").unwrap();
        assert_eq!(read_regular(&p, 5).unwrap(), b"hello");
        let e = read_regular(&p, 4).unwrap_err();
        assert!(e.to_string().contains("more than the limit of 4"), "{e}");
        let e = read_regular(d.path(), 100).unwrap_err();
        assert!(e.to_string().contains("a folder"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused_without_reading() {
        let e = read_regular(Path::new("/dev/zero"), 1 << 30).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        let e = write_atomically(Path::new("/dev/null"), b"x").unwrap_err();
        assert!(e.to_string().contains("refusing to replace"), "{e}");
        let meta = fs::symlink_metadata("/dev/null").unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(meta.file_type().is_char_device());
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_followed_and_kept() {
        let d = dir("link");
        let real = d.path().join("real.bin");
        let link = d.path().join("link.bin");
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        // A dangling link names the file to create.
        let dangling = d.path().join("dangling.bin");
        std::os::unix::fs::symlink("made.bin", &dangling).unwrap();
        write_atomically(&dangling, b"made").unwrap();
        assert_eq!(fs::read(d.path().join("made.bin")).unwrap(), b"made");
        // A link to a device is refused like the device.
        let dev = d.path().join("dev");
        std::os::unix::fs::symlink("/dev/null", &dev).unwrap();
        assert!(write_atomically(&dev, b"x").is_err());
        assert!(check_writable(&dev).is_err());
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let d = dir("stale");
        let target = d.path().join("w.safetensors");
        // Process ids near the top of the range are not running.
        let dead = d.path().join("w.safetensors.tmp-4194000");
        let alive = d
            .path()
            .join(format!("w.safetensors.tmp-{}", std::process::id()));
        let other = d.path().join("x.safetensors.tmp-4194000");
        for p in [&dead, &alive, &other] {
            fs::write(p, "partial").unwrap();
        }
        let removed = remove_stale_temporaries(&target);
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, vec![dead.clone()]);
            assert!(!dead.exists());
        }
        assert!(alive.exists() && other.exists());
    }

    #[test]
    fn writability_is_checked_without_leaving_files() {
        let d = dir("writable");
        check_writable(&d.path().join("w.bin")).unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        let e = check_writable(&d.path().join("missing/w.bin")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = check_writable(d.path()).unwrap_err();
        assert!(e.to_string().contains("a folder"), "{e}");
    }
}
