//! Detached signatures of `SHA256SUMS` in minisign's format, made and
//! checked with the `minisign` crate (by minisign's author); Debian's
//! `minisign -Vm SHA256SUMS -p KEY.pub` verifies them, and keys made by
//! `minisign -G` sign here.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;

/// Environment variable holding the password of an encrypted secret key
/// (never prompted for: releases run unattended).
pub const PASSWORD_ENV: &str = "PJRTPKGS_RELEASE_KEY_PASSWORD";

/// The signature file's name next to what it signs (minisign's default).
pub fn signature_name(file: &str) -> String {
    format!("{file}.minisig")
}

/// The trusted comment signed with `SHA256SUMS`: it binds the signature to
/// the release's tag (`release verify` refuses a release served under
/// another one).
pub fn trusted_comment(tag: &str) -> String {
    format!("pjrtpkgs {tag} {}", super::sums::FILE)
}

/// The public half of `key`, refused unless it is pins.toml's
/// `[release] minisign_public_key` (when one is pinned).
pub fn check_pinned(key: &minisign::SecretKey, pinned: Option<&str>) -> Result<minisign::PublicKey> {
    let public = minisign::PublicKey::from_secret_key(key).map_err(|e| anyhow!("{e}"))?;
    if let Some(pinned) = pinned {
        if public.to_base64() != pinned.trim() {
            bail!(
                "the signing key's public half ({}) is not pins.toml's [release] minisign_public_key ({pinned}): consumers could not verify the release",
                public.to_base64()
            );
        }
    }
    Ok(public)
}

/// Loads a minisign secret key file: unencrypted, or encrypted with the
/// password in `$PJRTPKGS_RELEASE_KEY_PASSWORD`.
pub fn load_secret_key(path: &Path) -> Result<minisign::SecretKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the signing key {}", path.display()))?;
    let encoded = text.lines().nth(1).map(str::trim).unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| anyhow!("{} is not a minisign secret key (its second line is not base64)", path.display()))?;
    // Bytes 2..4 name the key derivation: zero for an unencrypted key.
    let encrypted = bytes.get(2..4).is_some_and(|kdf| kdf != [0, 0]);
    let key = if encrypted {
        let boxed =
            minisign::SecretKeyBox::from_string(&text).map_err(|e| anyhow!("{} is not a minisign secret key: {e}", path.display()))?;
        let password =
            std::env::var(PASSWORD_ENV).map_err(|_| anyhow!("{} is encrypted: put its password in ${PASSWORD_ENV}", path.display()))?;
        boxed.into_secret_key(Some(password)).map_err(|e| anyhow!("cannot use the signing key {}: {e}", path.display()))?
    } else {
        // minisign 0.11's `-G -W` leaves the checksum of an unencrypted key
        // zero, which the crate's own loader calls corrupted: read the
        // bytes, and check the key by what matters, a signature its public
        // half verifies.
        let key = minisign::SecretKey::from_bytes(&bytes).map_err(|e| anyhow!("{} is not a minisign secret key: {e}", path.display()))?;
        let probe = sign(&key, b"pjrtpkgs key check", "key check");
        let public = minisign::PublicKey::from_secret_key(&key).map_err(|e| anyhow!("{e}"));
        match (probe, public) {
            (Ok(sig), Ok(public)) if verify(&public, &sig, b"pjrtpkgs key check").is_ok() => key,
            _ => bail!("{} is corrupted: its secret and public halves do not match", path.display()),
        }
    };
    Ok(key)
}

/// A public key: its base64 line (`RW...`), or a `.pub` file holding it.
pub fn load_public_key(key_or_file: &str) -> Result<minisign::PublicKey> {
    if let Ok(key) = minisign::PublicKey::from_base64(key_or_file.trim()) {
        return Ok(key);
    }
    let path = Path::new(key_or_file);
    if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return minisign::PublicKey::from_box(minisign::PublicKeyBox::from_string(&text).map_err(|e| anyhow!("{e}"))?)
            .map_err(|e| anyhow!("{} is not a minisign public key: {e}", path.display()));
    }
    bail!("`{key_or_file}` is neither a minisign public key (RW..., 56 characters) nor a readable .pub file")
}

/// The signature file of `data`, with `trusted_comment` signed along.
pub fn sign(key: &minisign::SecretKey, data: &[u8], trusted_comment: &str) -> Result<String> {
    let public = minisign::PublicKey::from_secret_key(key).map_err(|e| anyhow!("cannot derive the public key: {e}"))?;
    let signature =
        minisign::sign(Some(&public), key, Cursor::new(data), Some(trusted_comment), Some("signature from the pjrtpkgs release key"))
            .map_err(|e| anyhow!("signing failed: {e}"))?;
    Ok(signature.into_string())
}

/// Checks `signature` (the text of a `.minisig` file) over `data`.
/// Legacy (non-prehashed) signatures are refused, as `minisign -V` does.
/// Returns the trusted comment.
pub fn verify(key: &minisign::PublicKey, signature: &str, data: &[u8]) -> Result<String> {
    let signature = minisign::SignatureBox::from_string(signature).map_err(|e| anyhow!("not a minisign signature: {e}"))?;
    minisign::verify(key, &signature, Cursor::new(data), true, false, false).map_err(|e| anyhow!("{e}"))?;
    signature.trusted_comment().map_err(|e| anyhow!("{e}"))
}

/// The key id minisign prints (`minisign public key: 0123ABCD...`).
pub fn key_id(key: &minisign::PublicKey) -> String {
    key.keynum().iter().rev().map(|b| format!("{b:02X}")).collect()
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Generate the release signing key pair (minisign format)",
    long_about = "Generate an Ed25519 key pair in minisign's format: NAME.key (the secret key, mode 0600) and \
NAME.pub (the public key) in the output directory, and print the public key's base64 line. Put that line in \
pins.toml as [release] minisign_public_key, give the secret key to the release workflow (a repository secret \
named PJRTPKGS_RELEASE_KEY holding the file's text), and keep a copy offline.\n\n\
The secret key is encrypted when $PJRTPKGS_RELEASE_KEY_PASSWORD is set (the workflow then needs that password \
too), unencrypted otherwise. `minisign -G -p NAME.pub -s NAME.key` (Debian's minisign) makes an equivalent pair. \
Existing files are never overwritten.",
    after_help = "Examples:\n  cargo xtask release keygen\n  cargo xtask release keygen --out ~/secrets --name pjrtpkgs-2026 --json\n\n\
Exit status: 0 written, 1 failed (a key file exists, cannot write)."
)]
pub struct KeygenArgs {
    /// File name stem of the key pair.
    #[arg(long, default_value = "pjrtpkgs-release")]
    pub name: String,
    /// Directory for NAME.key and NAME.pub [default: keys/ in pjrtpkgs' cache directory, outside the
    /// project so the secret is never committed by accident]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print {public_key, key_id, public_key_file, secret_key_file} as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let name = &args.name;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) {
        bail!("key name `{name}` must be non-empty letters, digits, `.`, `-` or `_`");
    }
    let dir = match args.out {
        Some(dir) => dir,
        None => crate::project::cache_dir()?.join("keys"),
    };
    let secret_file = dir.join(format!("{name}.key"));
    let public_file = dir.join(format!("{name}.pub"));
    for f in [&secret_file, &public_file] {
        if f.exists() {
            bail!("{} already exists; keys are never overwritten: pick another --name or move it away", f.display());
        }
    }
    crate::fsutil::create_private_dirs(&dir)?;
    let pair = match std::env::var(PASSWORD_ENV) {
        Ok(password) => minisign::KeyPair::generate_encrypted_keypair(Some(password)),
        Err(_) => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| anyhow!("cannot generate a key pair: {e}"))?;
    let secret = pair.sk.to_box(Some("pjrtpkgs release secret key")).map_err(|e| anyhow!("{e}"))?.into_string();
    let public_box = pair.pk.to_box().map_err(|e| anyhow!("{e}"))?.into_string();

    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_file)
        .with_context(|| format!("cannot create {}", secret_file.display()))?;
    f.write_all(secret.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", secret_file.display()))?;
    crate::fsutil::write_atomic(&public_file, public_box.as_bytes())?;

    let public = pair.pk.to_base64();
    if args.json {
        let report = serde_json::json!({
            "public_key": public,
            "key_id": key_id(&pair.pk),
            "public_key_file": public_file,
            "secret_key_file": secret_file,
            "encrypted": std::env::var_os(PASSWORD_ENV).is_some(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!(
            "wrote {} (mode 0600, keep it secret) and {}\nadd to pins.toml [release]:\n  minisign_public_key = \"{public}\"",
            secret_file.display(),
            public_file.display()
        );
        println!("{public}");
    }
    Ok(ExitCode::SUCCESS)
}
