//! `cache keygen`: a fresh ed25519 signing key pair in Nix's format.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::binary_cache::narinfo::public_of_secret;
use crate::nix::Nix;

#[derive(Debug, clap::Args)]
#[command(
    about = "Generate a signing key pair for the binary cache",
    long_about = "Generate an ed25519 key pair with `nix key generate-secret`, in the format Nix uses for \
binary cache signatures. Writes NAME.secret (mode 0600, never printed) and NAME.public into the output \
directory, and prints the public key: put it in the flake's nixConfig.extra-trusted-public-keys.\n\n\
NAME is what clients see in `Sig:` lines; end it with a number (pjrtpkgs-1) and bump it when you \
replace the key. Existing key files are never overwritten.",
    after_help = "Examples:\n  cargo xtask cache keygen pjrtpkgs-1\n  cargo xtask cache keygen pjrtpkgs-2 --out ~/secrets --json\n\n\
Then give CI the secret (e.g. a repository secret written to a file) and `cargo xtask cache push URL --key FILE`.\n\n\
Exit status: 0 written, 1 failed (bad NAME, a key file already exists, `nix key generate-secret` failed)."
)]
pub struct Args {
    /// Key name, e.g. `pjrtpkgs-1` (letters, digits, `.`, `-`, `_`).
    pub name: String,
    /// Directory for NAME.secret and NAME.public [default: keys/ in pjrtpkgs' cache directory
    /// ($PJRTPKGS_CACHE_DIR, else $XDG_CACHE_HOME/pjrtpkgs, else ~/.cache/pjrtpkgs), outside the
    /// project so the secret is never committed by accident]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print `{name, public_key, public_key_file, secret_key_file}` as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let name = &args.name;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) {
        bail!("key name `{name}` must be non-empty letters, digits, `.`, `-` or `_` (e.g. pjrtpkgs-1)");
    }
    let dir = match args.out {
        Some(dir) => dir,
        None => crate::project::cache_dir()?.join("keys"),
    };
    let secret_file = dir.join(format!("{name}.secret"));
    let public_file = dir.join(format!("{name}.public"));
    for f in [&secret_file, &public_file] {
        if f.exists() {
            bail!("{} already exists; keys are never overwritten: pick a new name (e.g. bump the number) or move it away", f.display());
        }
    }
    crate::fsutil::create_private_dirs(&dir)?;

    let nix = Nix { store: None };
    let secret = nix.output(&["key", "generate-secret", "--key-name", name], "generating the key")?;
    let secret = secret.trim();
    let public = public_of_secret(secret).context("`nix key generate-secret` printed an unexpected key")?;

    // Created 0600 from the start: the secret is never readable by others, not even briefly.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_file)
        .with_context(|| format!("cannot create {}", secret_file.display()))?;
    f.write_all(secret.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", secret_file.display()))?;
    crate::fsutil::write_atomic(&public_file, format!("{public}\n").as_bytes())?;
    std::fs::set_permissions(&public_file, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot make {} readable", public_file.display()))?;

    if args.json {
        let report = serde_json::json!({
            "name": name,
            "public_key": public.to_string(),
            "public_key_file": public_file,
            "secret_key_file": secret_file,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("wrote {} (mode 0600, keep it secret) and {}", secret_file.display(), public_file.display());
        println!("{public}");
    }
    Ok(ExitCode::SUCCESS)
}
