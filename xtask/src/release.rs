//! `cargo xtask release`: versioned, reproducible, signed plugin archives
//! for everyone who does not use Nix, each plugin checked (from its ELF) to
//! run on an old glibc.
//!
//! A release turns plugin outputs (Nix build results, pinned prebuilt
//! wheels) into `dist/`:
//! - one `pjrt-<backend>-<os>-<arch>-v<version>.tar.gz` per plugin, holding
//!   `lib/pjrt_c_api_<backend>_plugin.so` (search path rewritten, portability
//!   checked), the PJRT headers under `include/` and
//!   `share/pjrt/version_info.json` — nix/lib.nix's layout, under one
//!   top-level directory named like the archive;
//! - `SHA256SUMS` and its minisign signature `SHA256SUMS.minisig`;
//! - `RELEASE_NOTES.md`.
//!
//! Everything is written to a staging directory and moved into place at the
//! end: a refused plugin leaves no partial release behind.

mod archive;
mod headers;
mod input;
mod notes;
pub mod portability;
mod sign;
mod sums;
mod verify;
pub mod version;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::glibc_floor::{self, Floor};
use crate::pinfile::{Pins, PinsDocument};
use crate::plugin::elf;
use crate::xla_headers::{parse_api_version, ApiVersion, CORE_HEADER};
use crate::xla_repo::XlaRepoArg;
use input::{Input, Origin};
use portability::Portability;
use version::ReleaseVersion;

pub use input::plugin_lib_name;
pub use verify::EXIT_PROBLEMS;

/// The environment variable naming the signing key file (the workflow writes
/// its secret there).
pub const KEY_ENV: &str = "PJRTPKGS_RELEASE_KEY_FILE";

/// The release notes' file name.
pub const NOTES_FILE: &str = "RELEASE_NOTES.md";

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    about = "Versioned, reproducible, signed plugin archives for non-Nix consumers",
    long_about = "Release plugin outputs as plain archives in --out (default dist/): one \
pjrt-<backend>-<os>-<arch>-v<version>.tar.gz per plugin (the plugin as lib/pjrt_c_api_<backend>_plugin.so, the PJRT \
headers under include/, share/pjrt/version_info.json), SHA256SUMS, its minisign signature SHA256SUMS.minisig and \
RELEASE_NOTES.md.\n\n\
INPUT is a Nix build result (a directory holding lib/, include/, share/pjrt/version_info.json: `nix build .#pjrt-cpu` \
makes ./result) or the name of a prebuilt plugin pinned in pins.toml, downloaded and sha256-verified first.\n\n\
Versions: the release is v<PJRT major>.<PJRT minor>.<build>, the PJRT version read from pjrt_c_api.h at the pinned XLA \
commit and the build counter from pins.toml [release] build; --dev makes the pre-release v...<build>.devYYYYMMDD. \
An archive of a source build carries the release's version; an archive of a binary plugin carries the PJRT version \
that plugin reports (an xla-cpu-pjrt plugin at API 0.81 is pjrt-cpu-linux-x86_64-v0.81.<build>.tar.gz).\n\n\
Before anything is archived, every shared library is read as ELF: its RUNPATH is rewritten ($ORIGIN when it needs a \
library shipped next to it, else none; never /nix/store or a build path), every library it needs must be shipped or \
provided by every system of the glibc floor ([release] glibc_floor, manylinux_2_27), and every GLIBC / GLIBCXX / CXXABI \
/ GCC symbol version it needs must exist there. A plugin over the floor is refused, with the versions and the symbols \
that need them; nothing is written.\n\n\
The archives are bit-for-bit reproducible: sorted entries, the [xla] commit date as every mtime, owner 0, fixed modes, \
gzip without name or timestamp. The signature is not (minisign signs with a fresh nonce); it verifies the same.",
    after_help = "Examples:\n  cargo xtask release xla-cpu-pjrt fastatomstruct-xla-cpu lammps-jax-pjrt-cpu --key ~/.cache/pjrtpkgs/keys/pjrtpkgs-release.key\n  \
nix build .#pjrt-cpu && cargo xtask release ./result --out dist --tag v0.93.1\n  \
cargo xtask release xla-cpu-pjrt --unsigned --dev --out /tmp/dist\n  cargo xtask release verify dist\n  \
cargo xtask release check ./result/lib/pjrt_c_api_cpu_plugin.so\n  cargo xtask release keygen\n  cargo xtask release bump\n\n\
Environment: PJRTPKGS_RELEASE_KEY_FILE is --key; PJRTPKGS_RELEASE_KEY_PASSWORD decrypts an encrypted key; \
SOURCE_DATE_EPOCH sets the --dev date.\n\n\
Exit status: 0 released; 1 error or refusal (a plugin over the floor, a tag that does not match, an unusable input): \
nothing was written."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub build: BuildArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Verify(verify::Args),
    Check(CheckArgs),
    Keygen(sign::KeygenArgs),
    Bump(BumpArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Nix build results and/or names of prebuilt plugins pinned in pins.toml (NAME, or
    /// NAME@SYSTEM for another system's wheel).
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<String>,
    /// Directory to create for the release; it must not exist or be empty.
    #[arg(long, value_name = "DIR", default_value = "dist")]
    pub out: PathBuf,
    /// Nix system of the prebuilt wheels named without @SYSTEM (default: this machine's).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
    /// minisign secret key that signs SHA256SUMS.
    #[arg(long, value_name = "FILE", env = KEY_ENV)]
    pub key: Option<PathBuf>,
    /// Make an unsigned release (for trying things out; `release verify --unsigned` checks it).
    #[arg(long, conflicts_with = "key")]
    pub unsigned: bool,
    /// A pre-release: v<major>.<minor>.<build>.devYYYYMMDD.
    #[arg(long)]
    pub dev: bool,
    /// Date of the pre-release, YYYYMMDD [default: SOURCE_DATE_EPOCH's day, else today (UTC)]
    #[arg(long, value_name = "YYYYMMDD", requires = "dev")]
    pub date: Option<String>,
    /// Refuse unless the release version is TAG (the workflow passes the pushed tag).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// The previous release the notes compare with: a tag of this repository, or `none`
    /// [default: the newest older v<major>.<minor>.<build> tag]
    #[arg(long, value_name = "TAG")]
    pub previous: Option<String>,
    #[command(flatten)]
    pub xla: XlaRepoArg,
    /// Where to look for the headers of a binary plugin that ships none: the newest commit
    /// of this XLA branch (or tag, or commit) declaring the plugin's PJRT version.
    #[arg(long, value_name = "REF", default_value = "main")]
    pub xla_ref: String,
    /// Archives written at once [default: the number of CPUs]
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Check plugins for portability, as `release` does, without archiving",
    long_about = "Read each shared library as ELF and judge it as `release` judges what it archives: every RUNPATH / \
RPATH entry is $ORIGIN (never the Nix store, a build directory or another absolute path); every DT_NEEDED library is \
next to the file (then $ORIGIN is in its RUNPATH) or provided by every system of the glibc floor; every GLIBC / GLIBCXX / \
CXXABI / GCC / ZLIB symbol version it needs from the system exists on the floor; it exports GetPjrtApi. Nothing is \
rewritten: a plugin fresh from a Nix build fails the RUNPATH rule here and passes after `release` rewrites it.",
    after_help = "Examples:\n  cargo xtask release check ./result/lib/pjrt_c_api_cpu_plugin.so\n  \
cargo xtask release check $(cargo xtask prebuilt fetch xla-cpu-pjrt) --floor manylinux_2_17 --json\n\n\
Exit status: 0 every file passes, 2 some file is refused (each problem printed), 1 error (not an ELF shared library)."
)]
pub struct CheckArgs {
    /// Plugin shared libraries.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// The floor to check against [default: pins.toml [release] glibc_floor]
    #[arg(long, value_name = "TAG")]
    pub floor: Option<String>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Count the release build number up, after a release is out",
    long_about = "Add one to pins.toml [release] build, so the next release gets the next version (v0.93.1 is out: \
the next is v0.93.2). `upgrade-xla` sets it back to 1 when the PJRT API version changes.",
    after_help = "Examples:\n  cargo xtask release bump\n\nExit status: 0 written, 1 error (no [release] table)."
)]
pub struct BumpArgs {}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        Some(Command::Verify(a)) => verify::run(a),
        Some(Command::Check(a)) => check_files(a),
        Some(Command::Keygen(a)) => sign::keygen(a),
        Some(Command::Bump(_)) => bump(),
        None => {
            let summary = build(&args.build)?;
            if args.build.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `release --json` prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub version: String,
    pub out: PathBuf,
    pub archives: Vec<ArchiveSummary>,
    pub signed_by: Option<String>,
    pub notes: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveSummary {
    pub file: String,
    pub sha256: String,
    pub input: String,
    pub backend: String,
    pub system: String,
    pub version: String,
    pub pjrt_api_version: String,
    pub portability: Portability,
}

/// One plugin on its way into an archive.
struct Planned {
    input: Input,
    system: String,
    version: ReleaseVersion,
    name: String,
    headers: headers::HeaderSet,
    portability: Portability,
}

/// The files of `input`'s lib/ as archived: each read, its search path
/// rewritten, then judged. Returns (file name, bytes, judgement, problems).
type LibFile = (String, Vec<u8>, Portability, Vec<String>, elf::ElfInfo);

fn lib_files(input: &Input, floor: &Floor, extra: &[String]) -> Result<Vec<LibFile>> {
    let bundled: Vec<String> = input.bundled.iter().map(|p| file_name(p)).collect();
    let mut out = Vec::new();
    let files = std::iter::once((&input.plugin, true)).chain(input.bundled.iter().map(|p| (p, false)));
    for (path, is_plugin) in files {
        let mut data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let info = elf::read(&data).with_context(|| format!("{}", path.display()))?;
        let wanted = portability::wanted_search_path(&info, &bundled);
        elf::set_search_path(&mut data, wanted).with_context(|| format!("cannot rewrite the RUNPATH of {}", path.display()))?;
        let info = elf::read(&data)?;
        let (report, problems) = portability::check(&info, floor, is_plugin, &bundled, extra);
        let name = if is_plugin { plugin_lib_name(&input.backend) } else { file_name(path) };
        out.push((name, data, report, problems, info));
    }
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The pjrtpkgs commit the release is made from, and whether tracked files
/// differ from it.
fn project_commit(root: &Path) -> (Option<String>, bool) {
    let Ok(repo) = git2::Repository::open(root) else { return (None, false) };
    let commit = repo.head().ok().and_then(|h| h.peel_to_commit().ok()).map(|c| c.id().to_string());
    let mut options = git2::StatusOptions::new();
    options.include_untracked(false).include_ignored(false);
    let modified = repo.statuses(Some(&mut options)).map(|s| !s.is_empty()).unwrap_or(false);
    (commit, modified)
}

/// `release`: see the command's long help.
pub fn build(args: &BuildArgs) -> Result<Summary> {
    let root = crate::project::root()?;
    let pins = Pins::load(&root.join("pins.toml"))?;
    let Some(release) = pins.release.clone() else {
        bail!(
            "pins.toml has no [release] table: add one with `build = 1` and `glibc_floor = \"{}\"` (docs/release.md)",
            glibc_floor::DEFAULT_FLOOR
        );
    };
    let floor = Floor::named(&release.glibc_floor).map_err(anyhow::Error::msg)?;

    // The signing key first: a release that cannot be signed is not started.
    let key = match (&args.key, args.unsigned) {
        (Some(path), _) => Some(sign::load_secret_key(path)?),
        (None, true) => None,
        (None, false) => bail!("no signing key: pass --key FILE (or set {KEY_ENV}), or --unsigned to try things out"),
    };
    let public = match &key {
        Some(k) => Some(minisign::PublicKey::from_secret_key(k).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    if let (Some(public), Some(pinned)) = (&public, &release.minisign_public_key) {
        if public.to_base64() != pinned.trim() {
            bail!(
                "the signing key's public half ({}) is not pins.toml's [release] minisign_public_key ({pinned}): consumers could not verify the release",
                public.to_base64()
            );
        }
    }

    // The version, from the header of the pinned commit.
    let repo = crate::xla_repo::open_for(&args.xla, &[&pins.xla.commit])?;
    let pinned_oid = git2::Oid::from_str(&pins.xla.commit)?;
    let tree = crate::xla_repo::commit_tree(&repo, pinned_oid)?;
    let header =
        crate::xla_repo::read_path(&repo, &tree, CORE_HEADER)?.with_context(|| format!("XLA {} has no {CORE_HEADER}", pins.xla.commit))?;
    let header_api = parse_api_version(&String::from_utf8_lossy(&header))?;
    if header_api.to_string() != pins.xla.pjrt_api_version {
        bail!(
            "{CORE_HEADER} at the pinned XLA {} declares PJRT API {header_api}, but pins.toml says {}: fix [xla] pjrt_api_version",
            pins.xla.commit,
            pins.xla.pjrt_api_version
        );
    }
    let dev = if args.dev { Some(version::dev_date(args.date.as_deref())?) } else { None };
    let version = ReleaseVersion::new(&header_api.to_string(), release.build, dev.as_deref())?;
    if let Some(tag) = &args.tag {
        if *tag != version.tag() {
            bail!(
                "the tag is {tag} but this checkout releases {} (PJRT API {header_api} at the pinned XLA, [release] build {}): \
                 tag {} instead, or fix pins.toml ([release] build; `cargo xtask release bump` after each release)",
                version.tag(),
                release.build,
                version.tag()
            );
        }
    }
    let mtime = version::epoch_seconds(&pins.xla.date)?.max(0) as u64;
    let (pjrtpkgs_commit, modified) = project_commit(&root);
    if modified {
        eprintln!(
            "warning: the checkout has uncommitted changes: version_info.json records {} plus those",
            pjrtpkgs_commit.as_deref().unwrap_or("no commit")
        );
    }

    // Inputs, their versions and headers.
    let mut history: Option<headers::History> = None;
    let mut planned: Vec<Planned> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for arg in &args.inputs {
        eprintln!("checking {arg} ...");
        let input = input::resolve(arg, args.system.as_deref(), &pins)?;
        let files = lib_files(&input, &floor, &release.system_libraries)?;
        let plugin_elf = &files[0].4;
        let system = format!("{}-linux", plugin_elf.arch.name());
        if let Some(s) = input.system.as_ref().filter(|s| **s != system) {
            bail!("{arg}: the {s} wheel holds a {} plugin", plugin_elf.arch.name());
        }
        for (name, _, _, file_problems, _) in &files {
            problems.extend(file_problems.iter().map(|p| format!("{arg}: {name}: {p}")));
        }
        let portability = files[0].2.clone();
        drop(files);
        let api: ApiVersion = input.api_version.parse()?;
        if input.origin == Origin::Source && api != header_api {
            bail!("{arg} says PJRT API {api}, but {CORE_HEADER} at the pinned XLA declares {header_api}");
        }
        let version = match input.origin {
            Origin::Source => version.clone(),
            Origin::Prebuilt => ReleaseVersion::new(&input.api_version, release.build, dev.as_deref())?,
        };
        let name = format!("pjrt-{}-linux-{}-v{version}", input.backend, arch_of(&system));
        if let Some(other) = planned.iter().find(|p| p.name == name) {
            bail!("{arg} and {} would both be {name}.tar.gz: release them separately", other.input.label);
        }
        let headers = match (input.origin, &input.own_headers) {
            (Origin::Source, _) => headers::of_commit(&repo, &pins.xla.commit)?,
            (Origin::Prebuilt, own) => {
                let from_plugin = match own {
                    Some(dir) => headers::own(dir, api)?,
                    None => None,
                };
                match from_plugin {
                    Some(set) => set,
                    None => {
                        if history.is_none() {
                            let repo = crate::xla_repo::open_for(&args.xla, &[&args.xla_ref])?;
                            history = Some(headers::History::read(&repo, &args.xla_ref)?);
                        }
                        history.as_ref().expect("read above").headers_for(&repo, api)?
                    }
                }
            }
        };
        planned.push(Planned { input, system, version, name, headers, portability });
    }
    if !problems.is_empty() {
        bail!("refused: {} problem(s), nothing was written:\n  {}", problems.len(), problems.join("\n  "));
    }
    // Everything downstream in the order of the archive names, whatever the
    // order of the inputs.
    planned.sort_by(|a, b| a.name.cmp(&b.name));

    // The output directory: staged beside it, moved into place at the end.
    let out = std::path::absolute(&args.out)?;
    if out.exists() && std::fs::read_dir(&out).with_context(|| format!("cannot list {}", out.display()))?.next().is_some() {
        bail!("{} is not empty: remove it or choose another --out", out.display());
    }
    let parent = out.parent().context("--out has no parent directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new().prefix(".release-").tempdir_in(parent)?;

    let infos: Vec<Value> = planned.iter().map(|p| version_info(p, &pins, &version, release.build, &pjrtpkgs_commit, modified)).collect();
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).clamp(1, planned.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<String>>>> = Mutex::new((0..planned.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(p) = planned.get(i) else { break };
                eprintln!("writing {}.tar.gz ...", p.name);
                let result = write_archive(p, &infos[i], &floor, &release.system_libraries, mtime, staging.path());
                results.lock().expect("no panics while holding the lock")[i] = Some(result);
            });
        }
    });
    let mut archives = Vec::new();
    for (p, result) in planned.iter().zip(results.into_inner().expect("no panics while holding the lock")) {
        let sha256 = result.expect("every archive was attempted")?;
        archives.push(ArchiveSummary {
            file: format!("{}.tar.gz", p.name),
            sha256,
            input: p.input.label.clone(),
            backend: p.input.backend.clone(),
            system: p.system.clone(),
            version: p.version.to_string(),
            pjrt_api_version: p.input.api_version.clone(),
            portability: p.portability.clone(),
        });
    }

    let sums_text = sums::render(&archives.iter().map(|a| (a.file.clone(), a.sha256.clone())).collect::<Vec<_>>());
    std::fs::write(staging.path().join(sums::FILE), &sums_text)?;
    if let Some(key) = &key {
        let signature = sign::sign(key, sums_text.as_bytes(), &format!("pjrtpkgs {} {}", version.tag(), sums::FILE))?;
        std::fs::write(staging.path().join(sign::signature_name(sums::FILE)), signature)?;
    }

    // Notes.
    let previous = notes::previous(&root, &version, args.previous.as_deref())?;
    let header_diff = match previous.as_ref().and_then(|p| p.xla_commit.clone()) {
        Some(old) if old != pins.xla.commit => {
            eprintln!("diffing the PJRT headers since {} ...", previous.as_ref().map_or("", |p| p.tag.as_str()));
            let repo = crate::xla_repo::open_for(&args.xla, &[&old, &pins.xla.commit])?;
            let report = crate::header_diff::diff_commits(&repo, git2::Oid::from_str(&old)?, pinned_oid)?;
            Some(notes::HeaderDiff {
                old_commit: old,
                verdict: report.verdict().as_str().to_ascii_uppercase(),
                abi: report.abi_verdict().as_str().to_owned(),
                markdown: report.to_markdown(),
            })
        }
        _ => None,
    };
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap_or_default();
    let lines: Vec<notes::ArchiveLine> = archives
        .iter()
        .zip(&planned)
        .map(|(a, p)| notes::ArchiveLine {
            file: a.file.clone(),
            sha256: a.sha256.clone(),
            backend: a.backend.clone(),
            system: a.system.clone(),
            api_version: a.pjrt_api_version.clone(),
            origin: match p.input.origin {
                Origin::Source => "XLA source".to_owned(),
                Origin::Prebuilt => {
                    let field = |k: &str| p.input.info.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
                    format!("wheel {} {}", field("package"), field("version"))
                }
            },
            max_glibc: a.portability.max_versions.get("GLIBC").cloned().unwrap_or_else(|| "-".to_owned()),
        })
        .collect();
    let text = notes::render(&notes::Notes {
        version: &version,
        xla_commit: &pins.xla.commit,
        xla_date: &pins.xla.date,
        xla_hash: &pins.xla.hash,
        api_version: &pins.xla.pjrt_api_version,
        floor: floor.tag,
        archives: &lines,
        signed_by: public.as_ref().map(|p| p.to_base64()),
        previous: previous.as_ref(),
        header_diff,
        changes: notes::new_entries(&changelog, previous.as_ref().map(|p| p.changelog.as_str())),
    });
    std::fs::write(staging.path().join(NOTES_FILE), text)?;

    // Into place.
    if out.exists() {
        std::fs::remove_dir(&out).with_context(|| format!("cannot replace the empty {}", out.display()))?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &out) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).with_context(|| format!("cannot move the release to {}", out.display()));
    }
    for a in &archives {
        eprintln!("{}  {}", a.sha256, a.file);
    }
    eprintln!("released {} in {}{}", version.tag(), out.display(), if key.is_some() { "" } else { " (UNSIGNED)" });
    Ok(Summary { version: version.tag(), out, archives, signed_by: public.map(|p| p.to_base64()), notes: NOTES_FILE.to_owned() })
}

fn arch_of(system: &str) -> &str {
    system.split('-').next().unwrap_or(system)
}

/// version_info.json of an archive: the input's keys (as nix/lib.nix
/// `versionInfo` names them) plus what the release adds.
fn version_info(p: &Planned, pins: &Pins, release: &ReleaseVersion, build: u32, commit: &Option<String>, modified: bool) -> Value {
    let mut info = p.input.info.clone();
    info.insert("pjrt_api_version".into(), p.input.api_version.clone().into());
    let xla_hash = (p.input.xla_commit.as_deref() == Some(pins.xla.commit.as_str())).then(|| pins.xla.hash.clone());
    info.insert("xla_hash".into(), json!(xla_hash));
    info.insert(
        "release".into(),
        json!({
            "version": p.version.to_string(),
            "tag": release.tag(),
            "build": build,
            "dev": p.version.dev,
        }),
    );
    let arch = arch_of(&p.system);
    info.insert("platform".into(), json!({ "system": p.system, "os": "linux", "arch": arch }));
    info.insert("headers".into(), p.headers.info.clone());
    info.insert("portability".into(), serde_json::to_value(&p.portability).expect("serializable"));
    info.insert("pjrtpkgs_commit".into(), json!(commit));
    if modified {
        info.insert("pjrtpkgs_modified".into(), true.into());
    }
    Value::Object(info)
}

/// Writes `<name>.tar.gz` into `dir`; returns its sha256.
fn write_archive(p: &Planned, info: &Value, floor: &Floor, extra: &[String], mtime: u64, dir: &Path) -> Result<String> {
    let files = lib_files(&p.input, floor, extra)?;
    let mut entries = Vec::new();
    for (name, data, _, problems, _) in files {
        if !problems.is_empty() {
            bail!("{}: {name} changed since it was checked", p.input.label);
        }
        entries.push(archive::Entry { path: format!("{}/lib/{name}", p.name), contents: data, executable: true });
    }
    for (path, contents) in &p.headers.files {
        entries.push(archive::Entry { path: format!("{}/include/{path}", p.name), contents: contents.clone(), executable: false });
    }
    let mut json = serde_json::to_vec_pretty(info)?;
    json.push(b'\n');
    entries.push(archive::Entry { path: format!("{}/share/pjrt/version_info.json", p.name), contents: json, executable: false });

    let path = dir.join(format!("{}.tar.gz", p.name));
    let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let hashing = crate::hashing::Hashing::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let hashing = archive::write_tar_gz(&entries, mtime, hashing).with_context(|| format!("cannot write {}", path.display()))?;
    let (sha, _) = {
        use std::io::Write as _;
        let mut hashing = hashing;
        hashing.flush()?;
        hashing.finish()
    };
    Ok(sha.to_hex())
}

/// `release check`: see the command's long help.
fn check_files(args: CheckArgs) -> Result<ExitCode> {
    let (floor_tag, extra) = match (&args.floor, crate::project::pins_toml()) {
        (Some(tag), _) => (tag.clone(), Vec::new()),
        (None, Ok(path)) => {
            let pins = Pins::load(&path)?;
            let release = pins.release.context("pins.toml has no [release] table; pass --floor TAG")?;
            (release.glibc_floor, release.system_libraries)
        }
        (None, Err(_)) => {
            eprintln!("note: not inside a pjrtpkgs checkout: checking against the default floor {}", glibc_floor::DEFAULT_FLOOR);
            (glibc_floor::DEFAULT_FLOOR.to_owned(), Vec::new())
        }
    };
    let floor = Floor::named(&floor_tag).map_err(anyhow::Error::msg)?;
    let mut reports = Vec::new();
    let mut refused = false;
    for path in &args.files {
        let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let info = elf::read(&data).with_context(|| format!("{}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let bundled: Vec<String> = info.needed.iter().filter(|n| dir.join(n).is_file()).cloned().collect();
        let (portability, problems) = portability::check(&info, &floor, true, &bundled, &extra);
        refused |= !problems.is_empty();
        if !args.json {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            let max: Vec<&str> = portability.max_versions.values().map(String::as_str).collect();
            eprintln!(
                "{}: {} ({}; needs {})",
                path.display(),
                if problems.is_empty() { "portable" } else { "REFUSED" },
                floor.tag,
                if max.is_empty() { "no versioned symbols".to_owned() } else { max.join(", ") }
            );
        }
        reports.push(json!({ "file": path, "ok": problems.is_empty(), "problems": problems, "portability": portability }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "floor": floor.tag, "files": reports }))?);
    }
    Ok(if refused { ExitCode::from(EXIT_PROBLEMS) } else { ExitCode::SUCCESS })
}

/// `release bump`: see the command's long help.
fn bump() -> Result<ExitCode> {
    let path = crate::project::pins_toml()?;
    let mut doc = PinsDocument::read(&path)?;
    let Some(build) = doc.release_build() else {
        bail!("{} has no [release] build to count up (docs/release.md)", path.display());
    };
    doc.set_release_build(build + 1);
    doc.write(&path)?;
    let pins = doc.pins()?;
    let next = ReleaseVersion::new(&pins.xla.pjrt_api_version, build + 1, None)?;
    eprintln!("{}: [release] build = {} (the next release is {})", path.display(), build + 1, next.tag());
    Ok(ExitCode::SUCCESS)
}
