//! `cache verify` against a hostile or broken cache: narinfos written by
//! hand (and signed by a test key, so the signature never stops the attack
//! early), NAR URLs that leave the cache, devices and FIFOs, decompression
//! bombs, malformed references, oversized narinfos, servers that never
//! answer. Every verdict must be one path's status, and no run may hang.
//!
//! The fingerprint signed here is Nix's (`1;path;sha256:nix32;size;refs`);
//! that `cache verify` computes it as Nix does is checked against narinfos
//! Nix itself signed in `cache_nix.rs`.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use xtask::hashing::NarHash;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A runaway `cache verify` (a hang, or a bomb decoded whole) is killed
/// after this long; a correct one finishes in about a second.
const WATCHDOG: Duration = Duration::from_secs(90);

/// A file:// binary cache written by hand, `<tmp>/cache`, signed by `test-1`.
struct TestCache {
    tmp: tempfile::TempDir,
    key: SigningKey,
}

/// One narinfo to write.
struct Entry {
    path: String,
    url: String,
    compression: &'static str,
    /// The NAR file's bytes, written at `url` when given.
    file: Option<Vec<u8>>,
    nar_hash: [u8; 32],
    nar_size: u64,
    file_size: Option<u64>,
    references: Vec<String>,
    signed: bool,
}

impl Entry {
    /// An uncompressed NAR of `nar`, signed, at `nar/<name>.nar`.
    fn plain(name: &str, nar: &[u8]) -> Entry {
        Entry {
            path: store_path(name),
            url: format!("nar/{name}.nar"),
            compression: "none",
            file: Some(nar.to_vec()),
            nar_hash: Sha256::digest(nar).into(),
            nar_size: nar.len() as u64,
            file_size: Some(nar.len() as u64),
            references: vec![],
            signed: true,
        }
    }
}

/// `/nix/store/<32 nix32 characters>-<name>`, the same for the same name.
fn store_path(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    format!("/nix/store/{}-{name}", &NarHash(digest.into()).to_nix32()[..32])
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

impl TestCache {
    fn new() -> TestCache {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("cache/nar")).unwrap();
        std::fs::write(tmp.path().join("cache/nix-cache-info"), "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n").unwrap();
        TestCache { tmp, key: SigningKey::from_bytes(&[7; 32]) }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn url(&self) -> String {
        format!("file://{}", self.root().display())
    }

    fn public_key(&self) -> String {
        format!("test-1:{}", B64.encode(self.key.verifying_key().as_bytes()))
    }

    fn narinfo_file(&self, path: &str) -> PathBuf {
        self.root().join(format!("{}.narinfo", &base_name(path)[..32]))
    }

    /// The narinfo text Nix would write for `e`, signed as Nix signs it.
    fn narinfo_text(&self, e: &Entry) -> String {
        let nar_hash = NarHash(e.nar_hash).to_nix32();
        let mut refs: Vec<&str> = e.references.iter().map(|r| base_name(r)).collect();
        refs.sort();
        let mut text = format!("StorePath: {}\nURL: {}\nCompression: {}\n", e.path, e.url, e.compression);
        if let Some(size) = e.file_size {
            text += &format!("FileSize: {size}\n");
        }
        text += &format!("NarHash: sha256:{nar_hash}\nNarSize: {}\nReferences: {}\n", e.nar_size, refs.join(" "));
        if e.signed {
            let full_refs: Vec<String> = refs.iter().map(|r| format!("/nix/store/{r}")).collect();
            let fingerprint = format!("1;{};sha256:{nar_hash};{};{}", e.path, e.nar_size, full_refs.join(","));
            text += &format!("Sig: test-1:{}\n", B64.encode(self.key.sign(fingerprint.as_bytes()).to_bytes()));
        }
        text
    }

    fn add(&self, e: &Entry) {
        if let Some(bytes) = &e.file {
            let file = self.root().join(&e.url);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, bytes).unwrap();
        }
        std::fs::write(self.narinfo_file(&e.path), self.narinfo_text(e)).unwrap();
    }

    /// `cache verify URL --json PATHS...` under the watchdog.
    fn verify(&self, url: &str, paths: &[&str]) -> Run {
        self.verify_with(url, paths, &[])
    }

    fn verify_with(&self, url: &str, paths: &[&str], env: &[(&str, &str)]) -> Run {
        let public = self.public_key();
        let flake = self.tmp.path().display().to_string();
        let mut args = vec!["cache", "verify", url, "--trusted-key", &public, "--flake", &flake, "--json"];
        args.extend(paths);
        xtask(&args, env)
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}); exit {:?}\nstderr:\n{}", self.code, self.stderr))
    }

    /// The report of a run that found problems (exit 2).
    fn problems_report(&self) -> Value {
        assert_eq!(self.code, Some(2), "expected exit 2 (problems found); stderr:\n{}\nstdout:\n{}", self.stderr, self.stdout);
        self.json()
    }
}

/// Runs the xtask, killing it at the watchdog: a run that hangs fails the
/// test instead of the suite.
fn xtask(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).env_remove("PJRTPKGS_CACHE_KEY_FILE").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`xtask {}` did not finish within {WATCHDOG:?} (it hangs, or reads without a bound); stderr so far:\n{}",
                args.join(" "),
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run { code: status.code(), stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

fn entry<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not in the report: {report:#}"))
}

fn status<'a>(report: &'a Value, path: &str) -> &'a str {
    entry(report, path)["status"].as_str().unwrap()
}

fn problems(report: &Value, path: &str) -> String {
    entry(report, path)["problems"].to_string()
}

#[test]
fn nar_urls_resolve_only_under_the_cache() {
    let cache = TestCache::new();
    // A file next to the cache, and the narinfo's NarHash is its true hash:
    // a verifier that follows the URL there calls the path `ok`.
    let secret = b"root:secret-hash:0:0\n".to_vec();
    std::fs::write(cache.tmp.path().join("secret.txt"), &secret).unwrap();
    let outside = cache.tmp.path().join("secret.txt").display().to_string();
    let mut dotdot = Entry::plain("dotdot", &secret);
    dotdot.file = None;
    dotdot.url = format!("nar/{}secret.txt", "../".repeat(2));
    let mut absolute = Entry::plain("absolute", &secret);
    absolute.file = None;
    absolute.url = outside.clone();
    // A symbolic link inside the cache pointing out of it.
    let mut link = Entry::plain("link", &secret);
    link.file = None;
    std::os::unix::fs::symlink(&outside, cache.root().join("nar/link.nar")).unwrap();
    let good = Entry::plain("good", b"a NAR, as far as hashes go");
    for e in [&dotdot, &absolute, &link, &good] {
        cache.add(e);
    }

    let run = cache.verify(&cache.url(), &[&dotdot.path, &absolute.path, &link.path, &good.path]);
    let report = run.problems_report();
    assert_eq!(status(&report, &good.path), "ok", "{report:#}");
    for e in [&dotdot, &absolute] {
        assert_eq!(status(&report, &e.path), "invalid", "{report:#}");
        assert!(problems(&report, &e.path).contains("URL"), "{report:#}");
    }
    assert_eq!(status(&report, &link.path), "corrupt", "{report:#}");
    assert!(problems(&report, &link.path).contains("symbolic link"), "{report:#}");
}

#[test]
fn devices_and_fifos_are_never_read_signed_or_not() {
    let cache = TestCache::new();
    // Unsigned, pointing at an endless device: refused as it stands.
    let mut zero = Entry::plain("zero", b"x");
    zero.file = None;
    zero.url = "/dev/zero".into();
    zero.signed = false;
    // Signed, at a FIFO inside the cache (opening it would block forever).
    let mut fifo = Entry::plain("fifo", b"x");
    fifo.file = None;
    let fifo_file = cache.root().join("nar/fifo.nar");
    assert!(Command::new("mkfifo").arg(&fifo_file).status().unwrap().success());
    // Unsigned, at the same FIFO: nothing may be fetched at all.
    let mut unsigned_fifo = Entry::plain("unsigned-fifo", b"x");
    unsigned_fifo.file = None;
    unsigned_fifo.url = fifo.url.clone();
    unsigned_fifo.signed = false;
    // Signed, the narinfo itself is a FIFO.
    let fifo_info = Entry::plain("fifo-info", b"x");
    assert!(Command::new("mkfifo").arg(cache.narinfo_file(&fifo_info.path)).status().unwrap().success());
    // Signed, the NAR is a directory.
    let mut dir = Entry::plain("dir", b"x");
    dir.file = None;
    std::fs::create_dir(cache.root().join("nar/dir.nar")).unwrap();
    for e in [&zero, &fifo, &unsigned_fifo, &dir] {
        cache.add(e);
    }

    let paths = [&zero.path, &fifo.path, &unsigned_fifo.path, &fifo_info.path, &dir.path];
    let report = cache.verify(&cache.url(), &paths.map(String::as_str)).problems_report();
    assert_eq!(status(&report, &zero.path), "invalid", "{report:#}");
    assert!(problems(&report, &zero.path).contains("URL: /dev/zero"), "{report:#}");
    assert_eq!(status(&report, &unsigned_fifo.path), "unsigned", "{report:#}");
    assert_eq!(status(&report, &fifo.path), "corrupt", "{report:#}");
    assert!(problems(&report, &fifo.path).contains("not a regular file"), "{report:#}");
    assert_eq!(status(&report, &fifo_info.path), "invalid", "{report:#}");
    assert!(problems(&report, &fifo_info.path).contains("not a regular file"), "{report:#}");
    assert_eq!(status(&report, &dir.path), "corrupt", "{report:#}");
}

/// A zstd frame that decodes to `blocks` × 128 KiB of zeros: 4 bytes per
/// RLE block (the ratio zstd's format allows at most).
fn zstd_bomb(blocks: u64) -> Vec<u8> {
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38]; // magic, no content size, 128 KiB window
    out.reserve(blocks as usize * 4);
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = (131072u32 << 3) | (1 << 1) | last; // RLE block of 128 KiB
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

#[test]
fn zstd_bomb_is_not_decoded_past_nar_size() {
    let cache = TestCache::new();
    // The issue's case: 2 GiB of zeros in 64 KiB, behind `NarSize: 528`.
    let bomb = zstd_bomb(16384);
    let mut small = Entry::plain("bomb", b"");
    small.compression = "zstd";
    small.url = "nar/bomb.nar.zst".into();
    small.nar_size = 528;
    small.file_size = Some(bomb.len() as u64);
    small.file = Some(bomb);
    // 1 TiB in 32 MiB: decoding it whole takes many minutes.
    let huge_bomb = zstd_bomb(1 << 23);
    let mut huge = Entry::plain("huge-bomb", b"");
    huge.compression = "zstd";
    huge.url = "nar/huge.nar.zst".into();
    huge.nar_size = 528;
    huge.file_size = Some(huge_bomb.len() as u64);
    huge.file = Some(huge_bomb);
    cache.add(&small);
    cache.add(&huge);

    let report = cache.verify(&cache.url(), &[&small.path, &huge.path]).problems_report();
    assert_eq!(status(&report, &small.path), "corrupt", "{report:#}");
    assert!(problems(&report, &small.path).contains("more than NarSize 528"), "decoding must stop at NarSize: {report:#}");
    assert_eq!(status(&report, &huge.path), "corrupt", "{report:#}");
}

#[test]
fn file_size_and_nar_size_bound_what_is_read() {
    let cache = TestCache::new();
    // A 1 TiB sparse NAR file (no disk used): a verifier that reads it whole
    // never finishes.
    let huge = cache.root().join("nar/huge.nar");
    std::fs::File::create(&huge).unwrap().set_len(1 << 40).unwrap();
    let mut with_file_size = Entry::plain("with-file-size", &[0; 100]);
    with_file_size.file = None;
    with_file_size.url = "nar/huge.nar".into();
    // No FileSize: NarSize alone must bound the read.
    let mut without_file_size = Entry::plain("without-file-size", &[0; 100]);
    without_file_size.file = None;
    without_file_size.url = "nar/huge.nar".into();
    without_file_size.file_size = None;
    // FileSize lies low, the data is otherwise right: the surplus is seen.
    let mut longer = Entry::plain("longer", b"0123456789");
    longer.file_size = Some(5);
    for e in [&with_file_size, &without_file_size, &longer] {
        cache.add(e);
    }

    let report = cache.verify(&cache.url(), &[&with_file_size.path, &without_file_size.path, &longer.path]).problems_report();
    for e in [&with_file_size, &without_file_size, &longer] {
        assert_eq!(status(&report, &e.path), "corrupt", "{report:#}");
    }
    assert!(problems(&report, &with_file_size.path).contains("FileSize 100"), "{report:#}");
    assert!(problems(&report, &without_file_size.path).contains("NarSize 100"), "{report:#}");
}

#[test]
fn a_malformed_narinfo_is_one_paths_status_not_the_runs_end() {
    let cache = TestCache::new();
    let good = Entry::plain("good", b"fine");
    let mut bad_ref = Entry::plain("bad-ref", b"x");
    bad_ref.references = vec!["abc".into()];
    // 200k references: a narinfo over the 1 MiB a narinfo may take. Cut at
    // 1 MiB it would end in a truncated, made-up store path.
    let mut many = Entry::plain("many-refs", b"y");
    many.references = (0..200_000).map(|i| store_path(&format!("dependency-number-{i}"))).collect();
    // Not UTF-8.
    let binary = Entry::plain("binary", b"z");
    // A line that is no field, holding a terminal escape sequence.
    let escape = Entry::plain("escape", b"w");
    // NarSize at the top of u64: nothing may overflow summing sizes.
    let mut max1 = Entry::plain("max-one", b"v");
    max1.nar_size = u64::MAX;
    max1.file_size = Some(u64::MAX);
    let mut max2 = Entry::plain("max-two", b"u");
    max2.nar_size = u64::MAX;
    max2.file_size = Some(u64::MAX);
    for e in [&good, &bad_ref, &many, &binary, &escape, &max1, &max2] {
        cache.add(e);
    }
    let mut bytes = cache.narinfo_text(&binary).into_bytes();
    bytes.extend_from_slice(b"System: \xff\xfe\n");
    std::fs::write(cache.narinfo_file(&binary.path), bytes).unwrap();
    let text = cache.narinfo_text(&escape) + "\x1b[2J\x1b]0;owned\x07\n";
    std::fs::write(cache.narinfo_file(&escape.path), text).unwrap();

    let paths = [&good.path, &bad_ref.path, &many.path, &binary.path, &escape.path, &max1.path, &max2.path];
    let run = cache.verify(&cache.url(), &paths.map(String::as_str));
    let report = run.problems_report();
    assert_eq!(status(&report, &good.path), "ok", "{report:#}");
    for p in [&bad_ref.path, &many.path, &binary.path, &escape.path] {
        assert_eq!(status(&report, p), "invalid", "{p}: {report:#}");
    }
    for p in [&max1.path, &max2.path] {
        assert_eq!(status(&report, p), "corrupt", "{p}: {report:#}");
    }
    // Nothing but the paths asked for: no path made up from a cut narinfo.
    let reported: Vec<&str> = report["paths"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(reported.len(), paths.len(), "{reported:#?}");
    assert!(problems(&report, &many.path).contains("1 MiB"), "{report:#}");

    // The text report never passes a control character to the terminal.
    let public = cache.public_key();
    let flake = cache.tmp.path().display().to_string();
    let text = xtask(&["cache", "verify", &cache.url(), "--trusted-key", &public, "--flake", &flake, &escape.path], &[]);
    assert_eq!(text.code, Some(2), "{}", text.stderr);
    assert!(!text.stdout.contains('\x1b') && !text.stderr.contains('\x1b'), "raw escape sequence printed:\n{:?}", text.stdout);
}

#[test]
fn untrusted_narinfos_are_not_followed() {
    let cache = TestCache::new();
    // An unsigned narinfo referring to 1000 paths: none may be looked up.
    let mut unsigned = Entry::plain("unsigned-root", b"r");
    unsigned.signed = false;
    unsigned.references = (0..1000).map(|i| store_path(&format!("bait-{i}"))).collect();
    cache.add(&unsigned);
    let report = cache.verify(&cache.url(), &[&unsigned.path]).problems_report();
    assert_eq!(status(&report, &unsigned.path), "unsigned", "{report:#}");
    assert_eq!(report["checked"], 1, "{report:#}");
}

/// nginx serving `root` on loopback, logging every request to `log`.
struct Nginx {
    child: std::process::Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(dir: &Path, root: &Path, log: &Path) -> Nginx {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  \
log_format paths '$request_uri';\n  access_log {} paths;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  \
fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  \
server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
        log.display(),
        root.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Nginx { child, port };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn signatures_are_checked_before_anything_is_fetched() {
    if !support::require_command("nginx") {
        return;
    }
    let cache = TestCache::new();
    let mut unsigned = Entry::plain("unsigned", b"unsigned NAR");
    unsigned.signed = false;
    unsigned.references = vec![store_path("bait")];
    let mut forged = Entry::plain("forged", b"forged NAR");
    forged.nar_size += 1; // the signature covers the true size, the narinfo says another
    let text = cache.narinfo_text(&forged);
    forged.nar_size -= 1;
    let good = Entry::plain("good", b"good NAR");
    for e in [&unsigned, &forged, &good] {
        cache.add(e);
    }
    // `forged` keeps the signature made for the other size.
    let sig = text.lines().find(|l| l.starts_with("Sig: ")).unwrap().to_owned();
    let honest = cache.narinfo_text(&forged);
    let spoiled: String = honest.lines().map(|l| if l.starts_with("Sig: ") { sig.clone() } else { l.to_owned() } + "\n").collect();
    std::fs::write(cache.narinfo_file(&forged.path), spoiled).unwrap();

    let log = cache.tmp.path().join("access.log");
    let server = nginx(&cache.tmp.path().join("nginx"), &cache.root(), &log);
    let url = format!("http://127.0.0.1:{}", server.port);
    let report = cache.verify(&url, &[&unsigned.path, &forged.path, &good.path]).problems_report();
    assert_eq!(status(&report, &unsigned.path), "unsigned", "{report:#}");
    assert_eq!(status(&report, &forged.path), "bad-signature", "{report:#}");
    assert_eq!(status(&report, &good.path), "ok", "{report:#}");
    drop(server);
    let requests = std::fs::read_to_string(&log).unwrap();
    assert!(requests.contains("/nar/good.nar"), "the trusted NAR was fetched: {requests}");
    for never in ["/nar/unsigned.nar", "/nar/forged.nar", &format!("/{}.narinfo", &base_name(&store_path("bait"))[..32])] {
        assert!(!requests.contains(never), "{never} was fetched on the word of an untrusted narinfo:\n{requests}");
    }
}

/// What the loopback server does with one request.
enum Reply {
    Body(Vec<u8>),
    NotFound,
    /// Accept, never answer, never close.
    Stall,
    /// A 200 whose body comes one byte a second, forever.
    Trickle,
    /// A 302 to this URL.
    Redirect(String),
}

/// A loopback HTTP server answering each request target with `reply`.
fn server(reply: impl Fn(&str) -> Reply + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
            let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
            let head = |status: &str, extra: &str, len: usize| {
                format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {len}\r\nConnection: close\r\n\r\n")
            };
            match reply(&target) {
                Reply::Body(body) => {
                    let _ = stream.write_all(head("200 OK", "", body.len()).as_bytes());
                    let _ = stream.write_all(&body);
                }
                Reply::NotFound => {
                    let _ = stream.write_all(head("404 Not Found", "", 0).as_bytes());
                }
                Reply::Stall => held.push(stream),
                Reply::Trickle => {
                    std::thread::spawn(move || {
                        let _ = stream.write_all(head("200 OK", "", 100_000).as_bytes());
                        while stream.write_all(b"S").and_then(|()| stream.flush()).is_ok() {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    });
                }
                Reply::Redirect(to) => {
                    let _ = stream.write_all(head("302 Found", &format!("Location: {to}\r\n"), 0).as_bytes());
                }
            }
        }
    });
    port
}

/// Serves `files`, stalls on the targets in `stall` (`*`: all), 404 otherwise.
fn stalling_server(files: Vec<(String, Vec<u8>)>, stall: Vec<String>) -> u16 {
    server(move |target| {
        if stall.iter().any(|s| s == "*" || s == target) {
            return Reply::Stall;
        }
        files.iter().find(|(p, _)| p == target).map_or(Reply::NotFound, |(_, body)| Reply::Body(body.clone()))
    })
}

fn narinfo_target(path: &str) -> String {
    format!("/{}.narinfo", &base_name(path)[..32])
}

#[test]
fn a_server_that_never_answers_does_not_hang_verify() {
    let cache = TestCache::new();
    let timeout = [("PJRTPKGS_HTTP_TIMEOUT", "2")];
    let good = Entry::plain("good", b"good NAR");
    let stalled_nar = Entry::plain("stalled-nar", b"stalled NAR");
    let stalled_info = Entry::plain("stalled-info", b"x");

    // Accepts every connection, answers nothing: the check cannot run.
    let port = stalling_server(vec![], vec!["*".into()]);
    let run = cache.verify_with(&format!("http://127.0.0.1:{port}"), &[&good.path], &timeout);
    assert_eq!(run.code, Some(1), "the check could not run: exit 1\n{}", run.stderr);
    assert!(run.stderr.contains("nix-cache-info") && run.stderr.contains("PJRTPKGS_HTTP_TIMEOUT"), "{}", run.stderr);

    // Answers the cache info, stalls on one narinfo and one NAR: those two
    // paths are `unreadable`, the others are still checked.
    let mut files = vec![("/nix-cache-info".to_owned(), b"StoreDir: /nix/store\n".to_vec())];
    for e in [&good, &stalled_nar] {
        files.push((narinfo_target(&e.path), cache.narinfo_text(e).into_bytes()));
        files.push((format!("/{}", e.url), e.file.clone().unwrap()));
    }
    let port = stalling_server(files, vec![format!("/{}", stalled_nar.url), narinfo_target(&stalled_info.path)]);
    let run = cache.verify_with(&format!("http://127.0.0.1:{port}"), &[&good.path, &stalled_nar.path, &stalled_info.path], &timeout);
    let report = run.problems_report();
    assert_eq!(status(&report, &good.path), "ok", "{report:#}");
    for p in [&stalled_nar.path, &stalled_info.path] {
        assert_eq!(status(&report, p), "unreadable", "{report:#}");
        assert!(problems(&report, p).contains("timed out"), "{report:#}");
    }
}

#[test]
fn push_without_a_key_names_every_way_out() {
    let out = xtask(&["cache", "push", "file:///nonexistent-cache"], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    for hint in ["--key", "PJRTPKGS_CACHE_KEY_FILE", "--unsigned", "cache keygen"] {
        assert!(out.stderr.contains(hint), "the error should mention {hint}:\n{}", out.stderr);
    }
}

#[test]
fn file_urls_must_be_absolute() {
    let cache = TestCache::new();
    let path = store_path("anything");
    let verify = cache.verify("file://tmp/x", &[&path]);
    assert_eq!(verify.code, Some(1), "{}", verify.stderr);
    assert!(verify.stderr.contains("file:///tmp/x"), "the error should show the absolute form:\n{}", verify.stderr);
    // push refuses before building anything (no Nix needed to see it).
    let push = xtask(&["cache", "push", "file://tmp/x", "--unsigned", &path], &[]);
    assert_eq!(push.code, Some(1), "{}", push.stderr);
    assert!(push.stderr.contains("file:///tmp/x"), "{}", push.stderr);
    assert!(!push.stderr.contains("[1/4]"), "push started building before refusing the URL:\n{}", push.stderr);
}

#[test]
fn push_refuses_a_compression_verify_cannot_read() {
    let path = store_path("anything");
    let out = xtask(&["cache", "push", "file:///nonexistent-cache?compression=lz4", "--unsigned", &path], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("compression=lz4") && out.stderr.contains("bzip2"), "{}", out.stderr);
    assert!(!out.stderr.contains("[1/4]"), "push started building before refusing the URL:\n{}", out.stderr);
}

#[test]
fn a_server_trickling_a_narinfo_is_cut_off() {
    let cache = TestCache::new();
    let good = Entry::plain("good", b"good NAR");
    let slow = Entry::plain("slow", b"slow NAR");
    let files = [
        ("/nix-cache-info".to_owned(), b"StoreDir: /nix/store\n".to_vec()),
        (narinfo_target(&good.path), cache.narinfo_text(&good).into_bytes()),
        ("/nar/good.nar".to_owned(), b"good NAR".to_vec()),
    ];
    // A byte every second: a read timeout of 2 s alone never fires.
    let slow_target = narinfo_target(&slow.path);
    let port = server(move |target| {
        if target == slow_target {
            return Reply::Trickle;
        }
        files.iter().find(|(p, _)| p == target).map_or(Reply::NotFound, |(_, body)| Reply::Body(body.clone()))
    });
    let run = cache.verify_with(&format!("http://127.0.0.1:{port}"), &[&good.path, &slow.path], &[("PJRTPKGS_HTTP_TIMEOUT", "2")]);
    let report = run.problems_report();
    assert_eq!(status(&report, &good.path), "ok", "{report:#}");
    assert_eq!(status(&report, &slow.path), "unreadable", "{report:#}");
}

#[test]
fn credentials_in_the_url_stay_out_of_reports() {
    let cache = TestCache::new();
    let good = Entry::plain("good", b"good NAR");
    let files = vec![("/nix-cache-info".to_owned(), b"StoreDir: /nix/store\n".to_vec())];
    let port = stalling_server(files, vec![]);
    let url = format!("http://ci:hunter2@127.0.0.1:{port}");
    let run = cache.verify(&url, &[&good.path]);
    let report = run.problems_report();
    assert_eq!(status(&report, &good.path), "missing", "{report:#}");
    assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"), "the password was printed:\n{}{}", run.stdout, run.stderr);
    assert_eq!(report["store_url"], format!("http://***@127.0.0.1:{port}"));
}

#[test]
fn key_files_that_are_not_files_are_refused() {
    let cache = TestCache::new();
    let fifo = cache.tmp.path().join("key.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.to_str().unwrap();
    let path = store_path("anything");
    let push = xtask(&["cache", "push", &cache.url(), "--key", fifo, &path], &[]);
    assert_eq!(push.code, Some(1), "{}", push.stderr);
    assert!(push.stderr.contains("not a regular file"), "{}", push.stderr);
    let flake = cache.tmp.path().display().to_string();
    let verify = xtask(&["cache", "verify", &cache.url(), "--trusted-key-file", fifo, "--flake", &flake, &path], &[]);
    assert_eq!(verify.code, Some(1), "{}", verify.stderr);
    assert!(verify.stderr.contains("not a regular file"), "{}", verify.stderr);
}

#[test]
fn narinfos_are_read_from_the_cache_only_never_through_a_redirect_elsewhere() {
    let cache = TestCache::new();
    // Another server on the machine (think: a cloud metadata endpoint).
    let internal = server(|target| match target {
        "/latest/credentials" => Reply::Body(b"AKIA-INTERNAL-SECRET-TOKEN\n".to_vec()),
        _ => Reply::NotFound,
    });
    let good = Entry::plain("good", b"good NAR");
    let lured = Entry::plain("lured", b"x");
    let mut files = vec![
        ("/nix-cache-info".to_owned(), b"StoreDir: /nix/store\n".to_vec()),
        (narinfo_target(&good.path), cache.narinfo_text(&good).into_bytes()),
        ("/nar/good.nar".to_owned(), b"good NAR".to_vec()),
    ];
    // A redirect within the cache is followed as before.
    let moved = Entry::plain("moved", b"moved NAR");
    files.push(("/elsewhere/moved.narinfo".to_owned(), cache.narinfo_text(&moved).into_bytes()));
    files.push(("/nar/moved.nar".to_owned(), b"moved NAR".to_vec()));
    let (lured_target, moved_target) = (narinfo_target(&lured.path), narinfo_target(&moved.path));
    let port = server(move |target| {
        if target == lured_target {
            Reply::Redirect(format!("http://127.0.0.1:{internal}/latest/credentials"))
        } else if target == moved_target {
            Reply::Redirect("/elsewhere/moved.narinfo".to_owned())
        } else {
            files.iter().find(|(p, _)| p == target).map_or(Reply::NotFound, |(_, body)| Reply::Body(body.clone()))
        }
    });
    let run = cache.verify(&format!("http://127.0.0.1:{port}"), &[&good.path, &lured.path, &moved.path]);
    let report = run.problems_report();
    assert_eq!(status(&report, &good.path), "ok", "{report:#}");
    assert_eq!(status(&report, &moved.path), "ok", "{report:#}");
    assert_eq!(status(&report, &lured.path), "invalid", "{report:#}");
    assert!(problems(&report, &lured.path).contains("redirected"), "{report:#}");
    assert!(!run.stdout.contains("AKIA") && !run.stderr.contains("AKIA"), "another server's answer reached the report:\n{}", run.stdout);
}

#[test]
fn a_key_given_in_the_wrong_place_is_named_and_never_echoed() {
    let cache = TestCache::new();
    let secret = format!("test-1:{}", B64.encode(cache.key.to_keypair_bytes()));
    let public = cache.public_key();
    std::fs::write(cache.tmp.path().join("test-1.secret"), &secret).unwrap();
    std::fs::write(cache.tmp.path().join("test-1.public"), &public).unwrap();
    let secret_b64 = secret.split_once(':').unwrap().1;
    let flake = cache.tmp.path().display().to_string();
    let path = store_path("anything");
    let secret_file = cache.tmp.path().join("test-1.secret").display().to_string();
    for args in [
        vec!["cache", "verify", &cache.url(), "--trusted-key-file", &secret_file, "--flake", &flake, &path],
        vec!["cache", "verify", &cache.url(), "--trusted-key", &secret, "--flake", &flake, &path],
    ] {
        let run = xtask(&args, &[]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("is a secret key") && run.stderr.contains(".public"), "{}", run.stderr);
        assert!(!run.stderr.contains(secret_b64) && !run.stdout.contains(secret_b64), "the secret key was printed");
    }
    let public_file = cache.tmp.path().join("test-1.public");
    std::fs::set_permissions(&public_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let run = xtask(&["cache", "push", &cache.url(), "--key", public_file.to_str().unwrap(), &path], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("is a public key") && run.stderr.contains(".secret"), "{}", run.stderr);
}
