//! Verified downloads: the sha256 is computed while streaming into a
//! temporary file next to the destination; only a file whose hash matches the
//! pin is renamed into place. A mismatch deletes the download.

use std::io::{BufReader, Read, Write};
use std::path::Path;

use crate::hashing::Hashing;
use anyhow::{bail, Context, Result};

/// Lowercase hex sha256 of a file, with a progress bar for large files.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = crate::progress::bytes_bar(format!("verifying {}", file_name(path)), Some(len));
    let mut hashing = Hashing::new(std::io::sink());
    std::io::copy(&mut BufReader::with_capacity(1 << 20, bar.wrap_read(&mut file)), &mut hashing)
        .with_context(|| format!("cannot read {}", path.display()))?;
    bar.finish_and_clear();
    Ok(hashing.finish().0.to_hex())
}

/// Makes `dest` a verified copy of `url`: an existing file is re-verified
/// (and deleted, then downloaded again, when it does not match).
pub fn fetch_verified(url: &str, sha256: &str, dest: &Path) -> Result<()> {
    if dest.exists() {
        let actual = sha256_file(dest)?;
        if actual == sha256 {
            return Ok(());
        }
        // Wheels are cached by their pinned sha256: a file here that does
        // not match it was damaged after it was verified.
        eprintln!("warning: cached {} is corrupt (sha256 {actual}, pinned {sha256}); deleting it and downloading again", dest.display());
        match std::fs::remove_file(dest) {
            // Another process may have replaced it in the meantime.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot delete the corrupt {}", dest.display()));
            }
            _ => {}
        }
    }
    download(url, sha256, dest)
}

/// Downloads `url` to `dest`, verifying `sha256` before the file appears.
pub fn download(url: &str, sha256: &str, dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Dropping `tmp` on any error (a timeout included) deletes the partial
    // download. Created 0666 less the umask, like any downloaded file (a
    // temporary file's default, 0600, would stick to the cached wheel).
    remove_abandoned_downloads(dir);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".download-{}-", std::process::id()))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let what = format!("download {url}");
    let mut response = crate::http::get(url, &what).map_err(|e| {
        let gone = matches!(e.downcast_ref::<ureq::Error>(), Some(ureq::Error::StatusCode(404 | 410)));
        match gone {
            true => e.context("the server no longer has this file: the pin is stale; re-pin with `cargo xtask prebuilt update`"),
            false => e,
        }
    })?;
    let bar = crate::progress::bytes_bar(format!("downloading {}", file_name(dest)), response.body().content_length());
    let mut reader = response.body_mut().as_reader();
    let tmp_path = tmp.path().to_path_buf();
    let mut out = Hashing::new(tmp.as_file_mut());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| crate::http::read_error(e, &what))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).with_context(|| format!("cannot write {}", tmp_path.display()))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let actual = out.finish().0.to_hex();
    if actual != sha256 {
        drop(tmp);
        bail!(
            "sha256 mismatch for {url}:\n  pinned     {sha256}\n  downloaded {actual}\nthe download was deleted; if the pin is wrong, re-pin with `cargo xtask prebuilt update`"
        );
    }
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error).with_context(|| format!("cannot move the download to {}", dest.display()))?;
    Ok(())
}

/// Removes the partial downloads (`.download-<pid>-*`) in `dir` of
/// processes that are gone (killed mid-download: a cuDNN wheel is 700 MB),
/// and any older than a day.
fn remove_abandoned_downloads(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(".download-")) else { continue };
        if crate::fsutil::abandoned(&entry.path(), rest) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    /// A download whose connection breaks off halfway fails and leaves
    /// nothing; the partial download a killed process left behind is
    /// removed by the next download into that directory; a file the server
    /// no longer has names the stale pin.
    #[test]
    fn broken_off_download_leaves_nothing() {
        // The process's one timeout, as the stalled-download test sets it:
        // whichever test runs first fixes it for both.
        crate::http::set_timeout(std::time::Duration::from_millis(500));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                if request.starts_with("GET /gone.whl") {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                } else {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nfirst bytes, then nothing");
                }
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.whl");
        // What a process killed mid-download leaves: its pid is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let orphan = dir.path().join(format!(".download-{}-abc123", child.id()));
        std::fs::write(&orphan, b"partial").unwrap();
        let err = super::download(&format!("http://127.0.0.1:{port}/x.whl"), &"0".repeat(64), &dest).unwrap_err();
        assert!(format!("{err:#}").contains("broke off"), "{err:#}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        let err = super::download(&format!("http://127.0.0.1:{port}/gone.whl"), &"0".repeat(64), &dest).unwrap_err();
        assert!(format!("{err:#}").contains("re-pin"), "{err:#}");
    }

    /// Issue 13, item 5: a download whose body stops halfway fails within
    /// the timeout, and its temporary file is gone.
    #[test]
    fn stalled_download_times_out_and_leaves_nothing() {
        crate::http::set_timeout(std::time::Duration::from_millis(500));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nfirst bytes").unwrap();
            std::thread::sleep(std::time::Duration::from_secs(30));
        });
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("wheels").join("x.whl");
        let started = std::time::Instant::now();
        let err = super::download(&format!("http://127.0.0.1:{port}/x.whl"), &"0".repeat(64), &dest).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
        assert!(format!("{err:#}").contains("--http-timeout"), "{err:#}");
        let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
