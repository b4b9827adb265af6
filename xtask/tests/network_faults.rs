//! Downloads against servers on 127.0.0.1 that misbehave: accept and never
//! answer, stall in the middle of a body, or answer like a hostile PyPI
//! mirror (`PJRTPKGS_PYPI_URL`). Nothing here needs the internet.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::scratch::Scratch;

/// What the server does with a request for a path.
#[derive(Clone)]
enum Answer {
    /// 200 with this body.
    Body(&'static str, Vec<u8>),
    /// Headers and the first `sent` bytes of a `len`-byte body, then silence.
    Stall { len: usize, sent: Vec<u8> },
}

/// A local HTTP/1.1 server: `answer` maps a request path to an [`Answer`]
/// (None: 404). Every requested path is logged. Connections it stalls on
/// are held open until the server is dropped.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(answer: impl Fn(&str) -> Option<Answer> + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(path) = read_request(&mut stream) else { continue };
                log.lock().unwrap().push(path.clone());
                match answer(&path) {
                    None => {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    Some(Answer::Body(content_type, body)) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
                    }
                    Some(Answer::Stall { len, sent }) => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
                        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&sent));
                        held.push(stream);
                    }
                }
            }
        });
        Server { port, requests }
    }

    /// A server that accepts every connection and never says a word (not
    /// even reading the request: a TLS client waits for a ServerHello).
    fn silent() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Server { port, requests: Arc::default() }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requested(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request).lines().next()?.to_owned();
    line.split(' ').nth(1).map(str::to_owned)
}

impl Scratch {
    /// The xtask with `args`, waiting at most a second on the network.
    fn impatient(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.env("PJRTPKGS_HTTP_TIMEOUT", "1").stdin(Stdio::null());
        cmd
    }

    /// Runs the xtask; a run still going after `limit` is killed and the
    /// test fails: it hung.
    fn run_within(&self, cmd: Command, limit: Duration) -> Output {
        self.try_run_within(cmd, limit).unwrap_or_else(|hung| panic!("{hung}"))
    }

    /// [`Self::run_within`], a hang being an `Err` that says what was left.
    fn try_run_within(&self, mut cmd: Command, limit: Duration) -> Result<Output, String> {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > limit {
                child.kill().unwrap();
                let out = child.wait_with_output().unwrap();
                let leftovers = temp_files(self.cache.path());
                return Err(format!(
                    "hung: still running after {limit:?}, killed (temporary files left in the cache: {leftovers:?}); stderr so far: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(child.wait_with_output().unwrap())
    }
}

/// `.download-*` / `.extract-*` files anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".download-") || name.starts_with(".extract-") {
                found.push(entry.path());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            } else {
                found.push(entry.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found
}

fn project_text() -> String {
    std::fs::read_to_string(support::project_root().join("pins.toml")).unwrap()
}

/// The project's pins with `xla-cpu-pjrt`'s x86_64-linux wheel served from
/// `base` (an https URL: pins take nothing else).
fn pins_with_wheel_at(base: &str) -> String {
    let text = project_text();
    let pins = xtask::pinfile::Pins::parse(&text, "pins.toml").unwrap();
    let url = &pins.prebuilt["xla-cpu-pjrt"].platforms["x86_64-linux"].url;
    let file = url.rsplit('/').next().unwrap();
    text.replace(url.as_str(), &format!("{base}/{file}"))
}

fn assert_timed_out(out: &Output, what: &str) {
    if let Err(e) = timed_out(Ok(out.clone()), what) {
        panic!("{e}");
    }
}

/// Ok when `run` ended with exit 1 and an error saying how to wait longer.
fn timed_out(run: Result<Output, String>, what: &str) -> Result<(), String> {
    let out = run.map_err(|hung| format!("{what}: {hung}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(1) {
        return Err(format!("{what}: exit {:?}: {stderr}", out.status.code()));
    }
    if !(stderr.contains("--http-timeout") && stderr.contains("PJRTPKGS_HTTP_TIMEOUT")) {
        return Err(format!("{what}: the error does not say how to wait longer: {stderr}"));
    }
    Ok(())
}

/// Issue 13, item 5: a server that accepts and never answers fails every
/// download within the timeout (1 s here), and leaves no temporary file.
#[test]
fn silent_servers_time_out() {
    let silent = Server::silent();
    let https = format!("https://127.0.0.1:{}", silent.port);
    let limit = Duration::from_secs(20);
    let mut failures = Vec::new();

    let s = Scratch::new(&project_text());
    let run = s.try_run_within(s.impatient(&["hash", "tarball", &silent.url("/a.tar.gz")]), limit);
    failures.extend(timed_out(run, "hash tarball URL").err());

    let mut update = s.impatient(&["prebuilt", "update", "xla-cpu-pjrt"]);
    update.env("PJRTPKGS_PYPI_URL", silent.url(""));
    failures.extend(timed_out(s.try_run_within(update, limit), "prebuilt update").err());

    for args in
        [&["prebuilt", "fetch", "xla-cpu-pjrt", "--system", "x86_64-linux"][..], &["smoke", "xla-cpu-pjrt", "--system", "x86_64-linux"]]
    {
        let s = Scratch::new(&pins_with_wheel_at(&https));
        failures.extend(timed_out(s.try_run_within(s.impatient(args), limit), &args.join(" ")).err());
        let left = temp_files(s.cache.path());
        if !left.is_empty() {
            failures.push(format!("{}: left temporary files {left:?}", args.join(" ")));
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));

    // The flag overrides the environment; a bad value is a usage error.
    let mut cmd = s.impatient(&["--http-timeout", "0.5", "hash", "tarball", &silent.url("/b.tar.gz")]);
    cmd.env("PJRTPKGS_HTTP_TIMEOUT", "3600");
    let out = s.run_within(cmd, limit);
    assert_timed_out(&out, "--http-timeout 0.5");
    let mut cmd = s.impatient(&["hash", "tarball", &silent.url("/c.tar.gz")]);
    cmd.env("PJRTPKGS_HTTP_TIMEOUT", "soon");
    let out = s.run_within(cmd, limit);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PJRTPKGS_HTTP_TIMEOUT=\"soon\" is not a timeout"));
}

/// Issue 13, item 5: a body that stops halfway fails with a timeout, not a
/// hang and not a "damaged archive".
#[test]
fn stalled_bodies_time_out() {
    let server = Server::start(|_| Some(Answer::Stall { len: 1 << 20, sent: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3] }));
    let s = Scratch::new(&project_text());
    let out = s.run_within(s.impatient(&["hash", "tarball", &server.url("/stalls.tar.gz")]), Duration::from_secs(20));
    assert_timed_out(&out, "hash tarball, stalled body");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("damaged"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A wheel holding one "plugin": a C library with a constructor that writes
/// the file named by $PJRTPKGS_TEST_LOADED when it is loaded. None without
/// a C compiler (a skip outside CI, a failure under it).
fn wheel_with_marking_plugin(dir: &Path) -> Option<Vec<u8>> {
    if !support::require_command("clang") {
        return None;
    }
    let source = dir.join("plugin.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include <stdlib.h>\n\
         __attribute__((constructor)) static void loaded(void) { const char* p = getenv(\"PJRTPKGS_TEST_LOADED\"); if (p) { FILE* f = fopen(p, \"w\"); if (f) fclose(f); } }\n\
         const void* GetPjrtApi(void) { return 0; }\n",
    )
    .unwrap();
    let library = dir.join("libmark.so");
    let out = Command::new("clang").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).output().unwrap();
    assert!(out.status.success(), "clang: {}", String::from_utf8_lossy(&out.stderr));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("evil_plugin/libmark.so", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(&std::fs::read(&library).unwrap()).unwrap();
    Some(zip.finish().unwrap().into_inner())
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A PyPI JSON document for `evil-plugin` 1.0 with one wheel.
fn pypi_json(filename: &str, url: &str, sha256: &str) -> Vec<u8> {
    serde_json::json!({
        "info": {"version": "1.0"},
        "urls": [{"filename": filename, "url": url, "packagetype": "bdist_wheel", "digests": {"sha256": sha256}}],
        "releases": {},
    })
    .to_string()
    .into_bytes()
}

/// Issue 13, item 11: a mirror that hands out plain http:// URLs gets
/// nothing downloaded, let alone loaded: such a pin would be refused anyway.
#[test]
fn plain_http_wheels_are_refused_before_download() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(wheel) = wheel_with_marking_plugin(tmp.path()) else { return };
    let sha = sha256_hex(&wheel);
    let name = "evil_plugin-1.0-py3-none-manylinux_2_27_x86_64.whl";
    let port_holder = Arc::new(Mutex::new(0u16));
    let port_for_server = port_holder.clone();
    let server = Server::start(move |path| match path {
        "/pypi/evil-plugin/json" => {
            let port = *port_for_server.lock().unwrap();
            let url = format!("http://127.0.0.1:{port}/files/{name}");
            Some(Answer::Body("application/json", pypi_json(name, &url, &sha)))
        }
        p if p.starts_with("/files/") => Some(Answer::Body("application/octet-stream", wheel.clone())),
        _ => None,
    });
    *port_holder.lock().unwrap() = server.port;

    let s = Scratch::new(&project_text());
    let marker = tmp.path().join("loaded");
    let mut cmd = s.impatient(&["prebuilt", "update", "evil-plugin", "--backend", "cpu"]);
    cmd.env("PJRTPKGS_PYPI_URL", server.url("")).env("PJRTPKGS_TEST_LOADED", &marker);
    let out = s.run_within(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not an https URL") && stderr.contains("nothing was downloaded"), "{stderr}");
    assert!(!marker.exists(), "the plugin fetched over plain http was loaded");
    assert!(!server.requested().iter().any(|p| p.starts_with("/files/")), "the wheel was downloaded: {:?}", server.requested());
    assert_eq!(files_under(s.cache.path()), Vec::<String>::new());
    assert_eq!(std::fs::read_to_string(s.root.path().join("pins.toml")).unwrap(), project_text());
}

/// Issue 13, item 3: a file name from PyPI's answer is a cache file name:
/// one with `../` is refused before anything is written.
#[test]
fn pypi_file_names_cannot_leave_the_cache() {
    let body = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    let sha = sha256_hex(&body);
    let escape = "../../../../escaped-1.0-py3-none-manylinux_2_27_x86_64.whl";
    let port_holder = Arc::new(Mutex::new(0u16));
    let port_for_server = port_holder.clone();
    let server = Server::start(move |path| match path {
        "/pypi/escaped/json" => {
            let port = *port_for_server.lock().unwrap();
            // No blake2b digest: the URL is taken as given.
            Some(Answer::Body("application/json", pypi_json(escape, &format!("http://127.0.0.1:{port}/x.whl"), &sha)))
        }
        _ => Some(Answer::Body("application/octet-stream", body.clone())),
    });
    *port_holder.lock().unwrap() = server.port;

    let outer = tempfile::tempdir().unwrap();
    let cache = outer.path().join("a/b/c/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let s = Scratch::new(&project_text());
    let mut cmd = s.impatient(&["prebuilt", "update", "escaped", "--backend", "cpu"]);
    cmd.env("PJRTPKGS_PYPI_URL", server.url("")).env("PJRTPKGS_CACHE_DIR", &cache);
    let out = s.run_within(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be used as a file name"), "{stderr}");
    let outside: Vec<String> = files_under(outer.path()).into_iter().filter(|f| !f.starts_with("a/b/c/cache/")).collect();
    assert_eq!(outside, Vec::<String>::new(), "written outside the cache");
}
