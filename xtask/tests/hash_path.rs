//! `hash path` against the real `nix hash path`.

mod support;

use std::ffi::OsStr;
use std::path::Path;

use proptest::prelude::*;
use support::hash::{nix_hash_path, nix_to_base32, run_xtask, strategy, try_nix_hash_path};
use support::require_nix;
use xtask::hashing::{nar::hash_path, nix32, NarHash};

/// Every output form of the CLI equals Nix's for `path`.
fn assert_cli_matches_nix(path: &Path) {
    let sri = nix_hash_path(path, None);
    assert_eq!(run_xtask([OsStr::new("hash"), "path".as_ref(), path.as_os_str()]).unwrap(), sri, "SRI of {path:?}");
    assert_eq!(
        run_xtask([OsStr::new("hash"), "path".as_ref(), "--base32".as_ref(), path.as_os_str()]).unwrap(),
        nix_hash_path(path, Some("--base32")),
        "--base32 of {path:?}"
    );
    assert_eq!(
        run_xtask([OsStr::new("hash"), "path".as_ref(), "--hex".as_ref(), path.as_os_str()]).unwrap(),
        nix_hash_path(path, Some("--base16")),
        "--hex of {path:?}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run_xtask([OsStr::new("hash"), "path".as_ref(), "--json".as_ref(), path.as_os_str()]).unwrap()).unwrap();
    assert_eq!(json["sri"], sri.as_str());
    assert_eq!(json["nix32"], nix_hash_path(path, Some("--base32")).as_str());
}

#[test]
fn edge_case_tree_matches_nix() {
    if !require_nix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    support::hash::edge_case_tree(&root);
    assert_cli_matches_nix(&root);
    // Sub-paths: a lone file, an executable, an empty file, an empty
    // directory, a symlink (hashed as a link, not followed).
    for sub in ["plain", "big.bin", "empty", "empty-dir", "link-to-dir", "dangling", "deep"] {
        let path = root.join(sub);
        assert_eq!(hash_path(&path).unwrap().to_sri(), nix_hash_path(&path, None), "{sub}");
    }
    assert_eq!(NarHash::from_sri(&nix_hash_path(&root, None)).unwrap(), hash_path(&root).unwrap());
}

#[test]
fn fifo_is_refused_like_nix() {
    if !require_nix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    std::fs::create_dir(&root).unwrap();
    let status = std::process::Command::new("mkfifo").arg(root.join("pipe")).status().unwrap();
    assert!(status.success());
    assert!(try_nix_hash_path(&root).is_err(), "nix hashes a fifo?");
    let err = hash_path(&root).unwrap_err();
    assert!(format!("{err:#}").contains("pipe"), "{err:#}");
}

#[test]
fn missing_path_is_a_clear_error() {
    let err = run_xtask(["hash", "path", "/nonexistent/pjrtpkgs-hash-test"]).unwrap_err();
    assert!(err.contains("/nonexistent/pjrtpkgs-hash-test"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    /// nix32 of every digest length Nix has (md5, sha1, sha256, sha512)
    /// agrees with Nix's, both ways.
    #[test]
    fn nix32_matches_nix_for_every_digest_length(
        (algo, bytes) in prop::sample::select(vec![("md5", 16usize), ("sha1", 20), ("sha256", 32), ("sha512", 64)])
            .prop_flat_map(|(algo, len)| (Just(algo), prop::collection::vec(any::<u8>(), len)))
    ) {
        if !require_nix() {
            return Ok(());
        }
        let theirs = nix_to_base32(algo, &hex::encode(&bytes));
        prop_assert_eq!(nix32::encode(&bytes), theirs.clone());
        prop_assert_eq!(nix32::decode(&theirs, bytes.len()).unwrap(), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_match_nix(tree in strategy::tree()) {
        if !require_nix() {
            return Ok(());
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        tree.materialize(&root);
        prop_assert_eq!(hash_path(&root).unwrap().to_sri(), nix_hash_path(&root, None));
    }
}

/// A directory `depth` levels deep below `root` (`d/d/.../d/f`), made with
/// relative `mkdir -p` steps: the whole path may exceed PATH_MAX.
fn deep_tree(root: &Path, depth: usize) {
    std::fs::create_dir_all(root).unwrap();
    let step = 500;
    let script = format!(
        "set -e; cd \"$1\"; n={depth}; while [ $n -gt 0 ]; do k=$(( n < {step} ? n : {step} )); p=$(printf 'd/%.0s' $(seq $k)); mkdir -p \"$p\"; cd -P \"$p\"; n=$(( n - k )); done; printf x > f"
    );
    let out = std::process::Command::new("sh").args(["-c", &script, "sh"]).arg(root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Deep trees: as deep as PATH_MAX allows, the hash is Nix's; deeper, an
/// error like Nix's, never a crash (the walk used to overflow its stack).
#[test]
fn deep_trees_hash_like_nix_or_fail_cleanly() {
    if !require_nix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fits = dir.path().join("fits");
    deep_tree(&fits, 1900);
    assert_eq!(try_nix_hash_path(&fits).as_deref(), Ok(hash_path(&fits).unwrap().to_sri().as_str()));
    assert_cli_matches_nix(&fits);

    let too_deep = dir.path().join("too-deep");
    deep_tree(&too_deep, 2100);
    assert!(try_nix_hash_path(&too_deep).is_err(), "Nix hashed a path beyond PATH_MAX");
    let out = support::hash::xtask().args(["hash", "path"]).arg(&too_deep).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("File name too long"), "{}", String::from_utf8_lossy(&out.stderr));
}
