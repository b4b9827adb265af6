//! `cargo xtask cache` against the real Nix: real store paths with
//! references, pushed signed to file:// and HTTP caches (nginx WebDAV,
//! python's static server), substituted by Nix into fresh stores; Nix must
//! refuse tampered, forged, unsigned and untrusted paths, and `cache verify`
//! must agree with it.
//!
//! Every store is a chroot store under a temporary directory
//! (`local?root=...`), so nothing touches the machine's /nix. Builds run
//! `/bin/sh` from the host, made visible in the build chroot through
//! `sandbox-paths`.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
    nix_config: String,
    flake: PathBuf,
}

impl Env {
    fn new() -> Option<Env> {
        if !support::require_command("nix") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let sandbox_paths: Vec<&str> = ["/bin", "/lib", "/lib64", "/usr"].into_iter().filter(|p| Path::new(p).exists()).collect();
        let nix_config = format!(
            "experimental-features = nix-command flakes\nsubstituters =\nsandbox-paths = {}\n{}",
            sandbox_paths.join(" "),
            support::build_users_setting()
        );
        let mut env = Env { flake: dir.path().join("flake"), dir, nix_config };
        env.write_flake();
        Some(env)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self, name: &str) -> String {
        format!("local?root={}", self.path(name).display())
    }

    fn file_url(&self, name: &str) -> String {
        format!("file://{}", self.path(name).display())
    }

    /// The environment every child gets: our Nix settings, a private Nix
    /// cache (narinfo lookups are cached per URL, and ports get reused).
    fn setup(&self, cmd: &mut Command) {
        cmd.env("NIX_CONFIG", &self.nix_config)
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("PJRTPKGS_CACHE_DIR", self.path("pjrtpkgs-cache"))
            .env_remove("PJRTPKGS_CACHE_KEY_FILE")
            .stdin(Stdio::null());
    }

    fn nix(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("nix");
        cmd.args(["--extra-experimental-features", "nix-command flakes"]).args(args);
        self.setup(&mut cmd);
        cmd.output().unwrap()
    }

    fn nix_ok(&self, args: &[&str]) -> String {
        let out = self.nix(args);
        assert!(out.status.success(), "nix {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn xtask(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args).env("PJRTPKGS_ROOT", self.dir.path());
        self.setup(&mut cmd);
        cmd.output().unwrap()
    }

    fn xtask_ok(&self, args: &[&str]) -> String {
        let out = self.xtask(args);
        assert!(out.status.success(), "xtask {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// A flake with `demo` (two outputs, `out` refers to `leaf` and `mid`,
    /// `mid` to `leaf`): a multi-path closure of input-addressed paths, the
    /// kind Nix only accepts with a trusted signature.
    fn write_flake(&mut self) {
        let system = self.nix_ok(&["eval", "--impure", "--raw", "--expr", "builtins.currentSystem"]);
        std::fs::create_dir_all(&self.flake).unwrap();
        let text = r#"{
  outputs = { self }: let
    system = "SYSTEM";
    mk = attrs: derivation ({ inherit system; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; } // attrs);
    leaf = mk { name = "leaf"; args = [ "-c" ''
      mkdir -p $out/bin $out/share
      echo leaf-data > $out/share/data
      printf '#!/bin/sh\necho hi\n' > $out/bin/hi
      chmod +x $out/bin/hi
      ln -s share/data $out/link
    '' ]; };
    mid = mk { name = "mid"; args = [ "-c" "echo ${leaf}/share/data > $out" ]; };
    demo = mk { name = "demo"; outputs = [ "out" "doc" ]; args = [ "-c" "printf '%s %s' ${mid} ${leaf} > $out; echo documentation > $doc" ]; };
  in {
    packages.${system} = { inherit demo leaf; };
  };
}
"#
        .replace("SYSTEM", system.trim());
        std::fs::write(self.flake.join("flake.nix"), text).unwrap();
    }

    fn flake_arg(&self) -> String {
        self.flake.display().to_string()
    }

    /// `(secret key file, public key)` made by `cache keygen`.
    fn keygen(&self, name: &str) -> (PathBuf, String) {
        let out = self.xtask_ok(&["cache", "keygen", name, "--out", self.path("keys").to_str().unwrap(), "--json"]);
        let json: Value = serde_json::from_str(&out).unwrap();
        (PathBuf::from(json["secret_key_file"].as_str().unwrap()), json["public_key"].as_str().unwrap().to_owned())
    }

    /// Pushes `targets` from the store `src` to `url`; returns the JSON report.
    fn push(&self, url: &str, key: Option<&Path>, extra: &[&str], targets: &[&str]) -> Value {
        let src = self.store("src");
        let flake = self.flake_arg();
        let mut args = vec!["cache", "push", url, "--store", &src, "--flake", &flake, "--json"];
        let key_str;
        match key {
            Some(k) => {
                key_str = k.display().to_string();
                args.extend(["--key", &key_str]);
            }
            None => args.push("--unsigned"),
        }
        args.extend(extra);
        args.extend(targets);
        serde_json::from_str(&self.xtask_ok(&args)).unwrap()
    }

    /// `nix copy --from CACHE --to a fresh store`, trusting only `trusted`.
    fn substitute(&self, cache_url: &str, dst: &str, trusted: &str, paths: &[String]) -> Output {
        let store = self.store(dst);
        let mut args = vec!["copy", "--from", cache_url, "--to", &store, "--option", "trusted-public-keys", trusted];
        args.extend(paths.iter().map(String::as_str));
        self.nix(&args)
    }

    /// The NAR serialisation of `path` in store `store`, per Nix.
    fn dump(&self, store: &str, path: &str) -> Vec<u8> {
        let store = self.store(store);
        let out = self.nix(&["store", "dump-path", "--store", &store, path]);
        assert!(out.status.success(), "dump-path {path} in {store}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Valid paths of store `name`, as Nix sees them.
    fn valid_paths(&self, name: &str) -> Vec<String> {
        let store = self.store(name);
        let mut paths: Vec<String> = self.nix_ok(&["path-info", "--store", &store, "--all"]).lines().map(str::to_owned).collect();
        paths.sort();
        paths
    }

    /// Entries in the store directory of `name` (unpacked paths, valid or not).
    fn store_entries(&self, name: &str) -> Vec<String> {
        match std::fs::read_dir(self.path(name).join("nix/store")) {
            Ok(dir) => dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n != ".links").collect(),
            Err(_) => vec![],
        }
    }

    fn closure(&self, store: &str, roots: &[String]) -> Vec<String> {
        let store = self.store(store);
        let mut args = vec!["path-info", "--store", &store, "--recursive"];
        args.extend(roots.iter().map(String::as_str));
        let mut paths: Vec<String> = self.nix_ok(&args).lines().map(str::to_owned).collect();
        paths.sort();
        paths
    }

    /// The fresh store holds exactly the closure, byte for byte as in `src`.
    fn assert_same_closure(&self, dst: &str, roots: &[String]) {
        let expected = self.closure("src", roots);
        assert!(expected.len() >= 4, "the test closure should have several paths: {expected:?}");
        assert_eq!(self.valid_paths(dst), expected, "the fresh store should hold exactly the closure");
        for path in &expected {
            assert!(self.dump(dst, path) == self.dump("src", path), "{path} differs between the source and the fresh store");
        }
    }

    fn verify(&self, url: &str, trusted: &str, targets: &[&str]) -> (i32, Value) {
        let flake = self.flake_arg();
        let mut args = vec!["cache", "verify", url, "--trusted-key", trusted, "--flake", &flake, "--json"];
        args.extend(targets);
        let out = self.xtask(&args);
        let code = out.status.code().unwrap();
        assert!(code == 0 || code == 2, "verify could not run ({code}):\n{}", String::from_utf8_lossy(&out.stderr));
        (code, serde_json::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap())
    }
}

fn roots(report: &Value) -> Vec<String> {
    report["roots"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect()
}

fn status_of<'a>(report: &'a Value, name_suffix: &str) -> &'a str {
    let paths = report["paths"].as_array().unwrap();
    let entry =
        paths.iter().find(|p| p["path"].as_str().unwrap().ends_with(name_suffix)).unwrap_or_else(|| panic!("no {name_suffix} in {report}"));
    entry["status"].as_str().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process bound to 127.0.0.1, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(mut cmd: Command, port: u16) -> Server {
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(server.child.try_wait().unwrap().is_none(), "the server exited before listening on {port}");
            assert!(Instant::now() < deadline, "the server did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving `root` with WebDAV PUT, so Nix can upload over HTTP.
fn nginx(env: &Env, root: &Path) -> Server {
    let port = free_port();
    let dir = env.path("nginx");
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::create_dir_all(root).unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  \
client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    root {};\n    \
client_max_body_size 0;\n    location / {{ dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw group:r all:r; }}\n  }}\n}}\n",
        root.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-e").arg(dir.join("error.log")).arg("-p").arg(&dir).arg("-c").arg(dir.join("nginx.conf"));
    Server::start(cmd, port)
}

#[test]
fn keygen_makes_its_directories_private_whatever_the_umask() {
    let Some(env) = Env::new() else { return };
    let keys = env.path("new/keys");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask 000; exec '{}' cache keygen ci-test-umask --out '{}'", env!("CARGO_BIN_EXE_xtask"), keys.display()))
        .env("PJRTPKGS_ROOT", env.dir.path());
    env.setup(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    for dir in [env.path("new"), keys.clone()] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o} (a key directory is nobody else's to list)", dir.display());
    }
    assert_eq!(std::fs::metadata(keys.join("ci-test-umask.secret")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn keygen_writes_a_private_secret_whose_public_half_nix_agrees_with() {
    let Some(env) = Env::new() else { return };
    let keys = env.path("keys");
    let out = env.xtask(&["cache", "keygen", "ci-test-1", "--out", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret_file = keys.join("ci-test-1.secret");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    let secret_b64 = secret.trim().split_once(':').unwrap().1;
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(secret_b64), "the secret key was printed");
    }
    // Nix derives the same public key from the secret.
    let mut nix = Command::new("nix");
    nix.args(["--extra-experimental-features", "nix-command", "key", "convert-secret-to-public"]);
    env.setup(&mut nix);
    let mut child = nix.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), secret.as_bytes()).unwrap();
    let public_by_nix = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let public_file = std::fs::read_to_string(keys.join("ci-test-1.public")).unwrap();
    assert_eq!(public_file.trim(), public_by_nix.trim());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public_by_nix.trim());

    // A second keygen never overwrites the pair.
    let again = env.xtask(&["cache", "keygen", "ci-test-1", "--out", keys.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    assert!(!env.xtask(&["cache", "keygen", "../escape", "--out", keys.to_str().unwrap()]).status.success());
}

#[test]
fn file_cache_push_substitutes_into_a_fresh_store() {
    let Some(env) = Env::new() else { return };
    let (key, public) = env.keygen("file-test-1");
    // A store path given directly, next to a flake output.
    std::fs::write(env.path("extra.txt"), "added directly\n").unwrap();
    let src = env.store("src");
    let extra =
        String::from_utf8(Command::new("nix-store").args(["--store", &src, "--add"]).arg(env.path("extra.txt")).output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
    assert!(extra.starts_with("/nix/store/"), "nix-store --add printed {extra:?}");

    let url = env.file_url("cache");
    let report = env.push(&url, Some(&key), &[], &["demo", &extra]);
    let roots = roots(&report);
    assert_eq!(roots.len(), 3, "demo.out, demo.doc and the added path: {roots:?}");
    assert_eq!(report["signed_by"], "file-test-1");

    let out = env.substitute(&url, "dst", &public, &roots);
    assert!(out.status.success(), "Nix refused the pushed closure:\n{}", String::from_utf8_lossy(&out.stderr));
    env.assert_same_closure("dst", &roots);

    let (code, verdict) = env.verify(&url, &public, &["demo", &extra]);
    assert_eq!(code, 0, "{verdict:#}");
    assert_eq!(verdict["checked"].as_u64(), Some(env.closure("src", &roots).len() as u64));
    assert!(verdict["paths"].as_array().unwrap().iter().all(|p| p["compression"] == "zstd" && p["signed_by"][0] == "file-test-1"));

    // Pushing again is a no-op for Nix and still leaves everything signed.
    let again = env.push(&url, Some(&key), &[], &["demo"]);
    assert_eq!(again["read_back"].as_u64(), Some(4));
}

#[test]
fn http_push_to_nginx_and_substitution_through_nix_store_realise() {
    let Some(env) = Env::new() else { return };
    if !support::require_command("nginx") {
        return;
    }
    let (key, public) = env.keygen("http-test-1");
    let server = nginx(&env, &env.path("www"));
    let report = env.push(&server.url(), Some(&key), &["--compression", "xz"], &["demo"]);
    let roots = roots(&report);
    assert!(env.path("www/nix-cache-info").is_file(), "Nix uploaded over HTTP PUT into nginx's directory");

    // Real substitution: the fresh store has no derivations, only this substituter and key.
    let dst = env.store("dst");
    let mut realise = Command::new("nix-store");
    realise.args(["--store", &dst, "--realise"]).args(&roots).args([
        "--option",
        "substituters",
        &server.url(),
        "--option",
        "trusted-public-keys",
        &public,
    ]);
    env.setup(&mut realise);
    let out = realise.output().unwrap();
    assert!(out.status.success(), "nix-store --realise from nginx failed:\n{}", String::from_utf8_lossy(&out.stderr));
    env.assert_same_closure("dst", &roots);

    let (code, verdict) = env.verify(&server.url(), &public, &["demo"]);
    assert_eq!(code, 0, "{verdict:#}");
    assert!(verdict["paths"].as_array().unwrap().iter().all(|p| p["compression"] == "xz"));
}

#[test]
fn bzip2_br_and_gzip_caches_verify_and_substitute() {
    let Some(env) = Env::new() else { return };
    let (key, public) = env.keygen("compression-test-1");
    // Every compression `cache push` offers besides those tested above.
    for compression in ["bzip2", "br", "gzip"] {
        let cache = format!("cache-{compression}");
        let url = env.file_url(&cache);
        let report = env.push(&url, Some(&key), &["--compression", compression], &["demo"]);
        let roots = roots(&report);
        let leaf = leaf_of(&env, &roots);
        assert_eq!(narinfo_field(&narinfo_of(&env.path(&cache), &leaf), "Compression"), compression, "Nix wrote another compression");

        let (code, verdict) = env.verify(&url, &public, &["demo"]);
        assert_eq!(code, 0, "{compression}: {verdict:#}");
        assert!(verdict["paths"].as_array().unwrap().iter().all(|p| p["compression"] == compression), "{verdict:#}");

        let out = env.substitute(&url, &format!("dst-{compression}"), &public, &roots);
        assert!(out.status.success(), "Nix refused its own {compression} cache:\n{}", String::from_utf8_lossy(&out.stderr));
        env.assert_same_closure(&format!("dst-{compression}"), &roots);
    }
}

#[test]
fn a_key_path_holding_url_characters_still_signs() {
    let Some(env) = Env::new() else { return };
    // Nix percent-decodes store parameters and splits them at `&`.
    let keys = env.path("keys & more %41");
    let out = env.xtask_ok(&["cache", "keygen", "odd-path-1", "--out", keys.to_str().unwrap(), "--json"]);
    let json: Value = serde_json::from_str(&out).unwrap();
    let key = PathBuf::from(json["secret_key_file"].as_str().unwrap());
    let public = json["public_key"].as_str().unwrap().to_owned();
    let url = env.file_url("cache");
    let report = env.push(&url, Some(&key), &[], &["demo"]);
    assert_eq!(report["signed_by"], "odd-path-1");
    let (code, verdict) = env.verify(&url, &public, &["demo"]);
    assert_eq!(code, 0, "{verdict:#}");
}

/// Replaces a narinfo field's value.
fn set_narinfo_field(narinfo: &Path, field: &str, value: &str) {
    let text = std::fs::read_to_string(narinfo).unwrap();
    let prefix = format!("{field}: ");
    let lines: Vec<String> = text.lines().map(|l| if l.starts_with(&prefix) { format!("{prefix}{value}") } else { l.to_owned() }).collect();
    std::fs::write(narinfo, lines.join("\n") + "\n").unwrap();
}

#[test]
fn unsigned_content_addressed_paths_are_judged_as_nix_judges_them() {
    let Some(env) = Env::new() else { return };
    let src = env.store("src");
    let add = |args: &[&str]| {
        let mut cmd = Command::new("nix-store");
        cmd.args(["--store", &src]).args(args);
        env.setup(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "nix-store {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    std::fs::create_dir_all(env.path("tree/sub")).unwrap();
    std::fs::write(env.path("tree/sub/file"), "recursive content\n").unwrap();
    std::fs::write(env.path("flat.txt"), "flat content\n").unwrap();
    // `fixed:r:sha256` (a source tree), `fixed:sha256` (a flat file).
    let recursive = add(&["--add", env.path("tree").to_str().unwrap()]);
    let flat = add(&["--add-fixed", "sha256", env.path("flat.txt").to_str().unwrap()]);
    let (_, stranger) = env.keygen("stranger-ca-1");

    let good = env.path("ca-cache");
    env.push(&env.file_url("ca-cache"), None, &["--compression", "none"], &[&recursive, &flat]);
    assert!(narinfo_field(&narinfo_of(&good, &recursive), "CA").starts_with("fixed:r:sha256:"));
    assert!(narinfo_field(&narinfo_of(&good, &flat), "CA").starts_with("fixed:sha256:"));

    // Nix takes both without any signature...
    let out = env.substitute(&env.file_url("ca-cache"), "dst-ca", &stranger, &[recursive.clone(), flat.clone()]);
    assert!(out.status.success(), "Nix refused unsigned content-addressed paths:\n{}", String::from_utf8_lossy(&out.stderr));
    // ... and so does verify, for the address it can check, and says which it cannot.
    let (code, verdict) = env.verify(&env.file_url("ca-cache"), &stranger, &[&recursive, &flat]);
    assert_eq!(code, 2, "{verdict:#}");
    let entry = |v: &Value, p: &str| v["paths"].as_array().unwrap().iter().find(|e| e["path"] == p).unwrap().clone();
    assert_eq!(entry(&verdict, &recursive)["status"], "ok", "{verdict:#}");
    assert_eq!(entry(&verdict, &recursive)["content_addressed"], true, "{verdict:#}");
    assert_eq!(entry(&verdict, &flat)["status"], "unverified", "{verdict:#}");
    let (code, verdict) = env.verify(&env.file_url("ca-cache"), &stranger, &[&recursive]);
    assert_eq!(code, 0, "{verdict:#}");

    // A content address that does not give the path: both refuse it.
    let wrong_ca = env.path("wrong-ca");
    copy_dir(&good, &wrong_ca);
    let flat_ca = narinfo_field(&narinfo_of(&good, &flat), "CA").replace("fixed:", "fixed:r:");
    set_narinfo_field(&narinfo_of(&wrong_ca, &recursive), "CA", &flat_ca);
    // Other content, with a NarHash and NarSize that describe it, under the right address.
    let other_content = env.path("other-content");
    copy_dir(&good, &other_content);
    let info = narinfo_of(&other_content, &recursive);
    let flat_info = narinfo_of(&other_content, &flat);
    std::fs::copy(other_content.join(narinfo_field(&flat_info, "URL")), other_content.join(narinfo_field(&info, "URL"))).unwrap();
    for field in ["NarHash", "NarSize", "FileHash", "FileSize"] {
        set_narinfo_field(&info, field, &narinfo_field(&flat_info, field));
    }
    for (cache, nix_says) in [("wrong-ca", "lacks a valid signature"), ("other-content", "mismatch")] {
        let out = env.substitute(&env.file_url(cache), &format!("dst-{cache}"), &stranger, std::slice::from_ref(&recursive));
        assert!(!out.status.success(), "Nix accepted the {cache} path");
        assert!(String::from_utf8_lossy(&out.stderr).contains(nix_says), "{cache}: {}", String::from_utf8_lossy(&out.stderr));
        let (code, verdict) = env.verify(&env.file_url(cache), &stranger, &[&recursive]);
        assert_eq!(code, 2, "{cache}: {verdict:#}");
        assert_eq!(entry(&verdict, &recursive)["status"], "unsigned", "{cache}: {verdict:#}");
    }
}

#[test]
fn static_http_server_serves_a_file_push() {
    let Some(env) = Env::new() else { return };
    if !support::require_command("python3") {
        return;
    }
    let (key, public) = env.keygen("static-test-1");
    // No targets: every package of the flake (demo with both outputs, leaf).
    let report = env.push(&env.file_url("www"), Some(&key), &[], &[]);
    let roots = roots(&report);
    assert_eq!(roots.len(), 3, "{roots:?}");
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"]).arg(env.path("www"));
    let server = Server::start(cmd, port);

    let out = env.substitute(&server.url(), "dst", &public, &roots);
    assert!(out.status.success(), "Nix refused the closure served over HTTP:\n{}", String::from_utf8_lossy(&out.stderr));
    env.assert_same_closure("dst", &roots);
    let (code, verdict) = env.verify(&server.url(), &public, &[]);
    assert_eq!(code, 0, "{verdict:#}");
    assert_eq!(verdict["checked"], 4, "{verdict:#}");

    // A path the server does not have is reported missing, not an error.
    let missing = format!("/nix/store/{}-absent", "0".repeat(32));
    let (code, verdict) = env.verify(&server.url(), &public, &[&missing]);
    assert_eq!(code, 2);
    assert_eq!(status_of(&verdict, "-absent"), "missing");
}

/// Copies a cache directory, so each spoiled variant starts from the good one.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn narinfo_of(cache: &Path, path: &str) -> PathBuf {
    let hash = path.rsplit('/').next().unwrap().split('-').next().unwrap();
    cache.join(format!("{hash}.narinfo"))
}

fn narinfo_field(narinfo: &Path, field: &str) -> String {
    let text = std::fs::read_to_string(narinfo).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}: "))).unwrap().to_owned()
}

/// Rewrites every `Sig:` line with one bit of the signature flipped.
fn forge_signatures(cache: &Path) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    for entry in std::fs::read_dir(cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "narinfo") {
            let text = std::fs::read_to_string(&path).unwrap();
            let forged: Vec<String> = text
                .lines()
                .map(|l| match l.strip_prefix("Sig: ").and_then(|s| s.split_once(':')) {
                    Some((name, sig)) => {
                        let mut bytes = b64.decode(sig).unwrap();
                        bytes[10] ^= 1;
                        format!("Sig: {name}:{}", b64.encode(bytes))
                    }
                    None => l.to_owned(),
                })
                .collect();
            std::fs::write(&path, forged.join("\n") + "\n").unwrap();
        }
    }
}

fn leaf_of(env: &Env, roots: &[String]) -> String {
    env.closure("src", roots).into_iter().find(|p| p.ends_with("-leaf")).unwrap()
}

#[test]
fn nix_refuses_tampered_forged_unsigned_and_untrusted_and_verify_agrees() {
    let Some(env) = Env::new() else { return };
    let (key, public) = env.keygen("trust-test-1");
    let (_, stranger) = env.keygen("stranger-1");
    let good = env.path("good");
    let report = env.push(&env.file_url("good"), Some(&key), &["--compression", "none"], &["demo"]);
    let roots = roots(&report);
    let leaf = leaf_of(&env, &roots);

    // Tampered: the leaf's NAR says LEAF-DATA where it said leaf-data (same size, still a valid NAR).
    let tampered = env.path("tampered");
    copy_dir(&good, &tampered);
    let nar = tampered.join(narinfo_field(&narinfo_of(&tampered, &leaf), "URL"));
    let bytes = std::fs::read(&nar).unwrap();
    let at = bytes.windows(9).position(|w| w == b"leaf-data").expect("the leaf's data is in its NAR");
    let mut spoiled = bytes.clone();
    spoiled[at..at + 9].copy_from_slice(b"LEAF-DATA");
    std::fs::write(&nar, spoiled).unwrap();

    // Forged: every signature altered by one bit.
    let forged = env.path("forged");
    copy_dir(&good, &forged);
    forge_signatures(&forged);

    // Unsigned: pushed without a key.
    env.push(&env.file_url("unsigned"), None, &["--compression", "none"], &["demo"]);

    let cases = [
        ("tampered", public.as_str(), "corrupt"),
        ("forged", public.as_str(), "bad-signature"),
        ("unsigned", public.as_str(), "unsigned"),
        ("good", stranger.as_str(), "untrusted"),
    ];
    // `demo.out`: its closure holds every spoiled path (`demo.doc` refers to nothing).
    let demo: Vec<String> = roots.iter().filter(|r| r.ends_with("-demo")).cloned().collect();
    for (cache, trusted, expected_status) in cases {
        let url = env.file_url(cache);
        let dst = format!("dst-{cache}-{expected_status}");
        let out = env.substitute(&url, &dst, trusted, &demo);
        assert!(!out.status.success(), "Nix accepted the {cache} cache trusting {trusted}");
        assert!(env.valid_paths(&dst).is_empty(), "{cache}: Nix registered paths: {:?}", env.valid_paths(&dst));
        // Signatures are checked before anything is downloaded. A hash mismatch is
        // only seen after unpacking: Nix 2.8 leaves that directory behind, invalid
        // (never registered, so unusable, and removed by the next garbage collection).
        if cache != "tampered" {
            assert!(env.store_entries(&dst).is_empty(), "{cache}: paths were left in the store: {:?}", env.store_entries(&dst));
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(match cache {
                "tampered" => "hash mismatch",
                _ => "lacks a valid signature",
            }),
            "{cache}: Nix failed for another reason:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let (code, verdict) = env.verify(&url, trusted, &["demo"]);
        assert_eq!(code, 2, "verify passed the {cache} cache: {verdict:#}");
        if cache == "tampered" {
            assert_eq!(status_of(&verdict, "-leaf"), expected_status, "{cache}: {verdict:#}");
        } else {
            // Like Nix, verify reads nothing more on an untrusted narinfo's word:
            // the roots are refused and their references never looked up.
            assert_eq!(status_of(&verdict, "-demo"), expected_status, "{cache}: {verdict:#}");
            assert!(verdict["paths"].as_array().unwrap().iter().all(|p| p["needed_by"].is_null()), "{cache}: {verdict:#}");
        }
    }

    // The untouched cache with the right key is accepted by both.
    let out = env.substitute(&env.file_url("good"), "dst-good", &public, &roots);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.verify(&env.file_url("good"), &public, &["demo"]).0, 0);

    // Missing: the leaf's narinfo is gone; the closure walk finds the hole.
    let holed = env.path("holed");
    copy_dir(&good, &holed);
    std::fs::remove_file(narinfo_of(&holed, &leaf)).unwrap();
    let (code, verdict) = env.verify(&env.file_url("holed"), &public, &["demo"]);
    assert_eq!(code, 2);
    assert_eq!(status_of(&verdict, "-leaf"), "missing");
    let leaf_entry = verdict["paths"].as_array().unwrap().iter().find(|p| p["path"] == leaf.as_str()).unwrap();
    assert!(leaf_entry["needed_by"].as_str().unwrap().ends_with("-demo"), "{leaf_entry}");
    let out = env.substitute(&env.file_url("holed"), "dst-holed", &public, &roots);
    assert!(!out.status.success(), "Nix substituted a closure with a hole");
}
