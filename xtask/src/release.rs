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
//! - a CycloneDX SBOM per archive (`<archive>.cdx.json`, [`sbom`]);
//! - `compat.json`, the compatibility feed ([`compat`]);
//! - `RELEASE_NOTES.md`;
//! - `SHA256SUMS`, listing every file above, and its minisign signature
//!   `SHA256SUMS.minisig`, whose trusted comment names the tag.
//!
//! Everything is written to a staging directory and moved into place at the
//! end: a refused plugin leaves no partial release behind ([`staging`]).

mod archive;
pub mod compat;
pub mod fetch;
mod headers;
mod input;
mod input_tree;
pub mod loader;
mod notes;
pub mod portability;
mod probe;
pub mod sbom;
mod sign;
mod staging;
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
gzip without name or timestamp. The signature is not (minisign signs with a fresh nonce); it verifies the same.\n\n\
Beside the archives: a CycloneDX 1.6 SBOM per archive (<archive>.cdx.json) and compat.json, the compatibility feed \
(PJRT API version and struct size, extensions, StableHLO versions, conform counts and failing checks, what each plugin \
needs to load; conform runs on each plugin as archived, in a child process, unless --no-conform). SHA256SUMS lists \
every file, the notes included; the signature's trusted comment names the tag.",
    after_help = "Examples:\n  cargo xtask release xla-cpu-pjrt fastatomstruct-xla-cpu lammps-jax-pjrt-cpu --unsigned --tag v0.93.1\n  \
cargo xtask release sign dist --tag v0.93.1 --key ~/.cache/pjrtpkgs/keys/pjrtpkgs-release.key\n  \
nix build .#pjrt-cpu && cargo xtask release ./result --out dist --tag v0.93.1 --unsigned\n  \
cargo xtask release xla-cpu-pjrt --unsigned --dev --out /tmp/dist\n  cargo xtask release verify dist --tag v0.93.1\n  \
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
    Sign(SignArgs),
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
    /// minisign secret key that signs SHA256SUMS. Plugins are loaded (their version, conform) as your user:
    /// for real releases make the release --unsigned and sign it elsewhere with `release sign`.
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
    /// Do not run `conform` on the archived plugins: compat.json then records no struct size,
    /// extensions, StableHLO versions or conformance counts.
    #[arg(long)]
    pub no_conform: bool,
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
        Some(Command::Sign(a)) => sign_release(a),
        Some(Command::Check(a)) => check_files(a),
        Some(Command::Keygen(a)) => sign::keygen(a),
        Some(Command::Bump(_)) => bump(),
        None => {
            let summary = build(&args.build)?;
            if args.build.json {
                crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
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
    pub compat: String,
    /// Every file of the release, as `SHA256SUMS` lists them.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveSummary {
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub sbom: String,
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

/// An archive as written: its summary and the sha256 of each file in it
/// (paths below its top directory, the plugin first).
struct Written {
    sha256: String,
    size: u64,
    files: Vec<(String, String)>,
}

/// The files of `input`'s lib/ as archived: each read, its search path
/// rewritten, then judged. Returns (file name, bytes, judgement, problems).
type LibFile = (String, Vec<u8>, Portability, Vec<String>, elf::ElfInfo);

fn lib_files(input: &Input, floor: &Floor, extra: &[String]) -> Result<Vec<LibFile>> {
    let bundled: Vec<String> = input.bundled.iter().map(|p| file_name(p)).collect();
    // Every file read and rewritten first: each is judged beside the others.
    let mut rewritten = Vec::new();
    let files = std::iter::once((&input.plugin, true)).chain(input.bundled.iter().map(|p| (p, false)));
    for (path, is_plugin) in files {
        let mut data = input.read_library(path)?;
        let info = elf::read(&data).with_context(|| input.describe(path))?;
        let wanted = portability::wanted_search_path(&info, &bundled);
        elf::set_search_path(&mut data, wanted).with_context(|| format!("cannot rewrite the RUNPATH of {}", input.describe(path)))?;
        let info = elf::read(&data)?;
        let name = if is_plugin { plugin_lib_name(&input.backend) } else { file_name(path) };
        rewritten.push((name, data, info, is_plugin));
    }
    let neighbors: Vec<portability::Neighbor> =
        rewritten.iter().filter(|f| !f.3).map(|(name, _, info, _)| portability::Neighbor { name, elf: Some(info) }).collect();
    let judged: Vec<(Portability, Vec<String>)> =
        rewritten.iter().map(|(_, _, info, is_plugin)| portability::check(info, floor, *is_plugin, &neighbors, extra)).collect();
    drop(neighbors);
    Ok(rewritten.into_iter().zip(judged).map(|((name, data, info, _), (report, problems))| (name, data, report, problems, info)).collect())
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

/// `--out` as given, made absolute, once it is known to be usable: not a
/// symbolic link (the release would land wherever it points), not a
/// non-empty directory. Checked before any work is done.
fn usable_out(out: &Path) -> Result<PathBuf> {
    let out = std::path::absolute(out)?;
    match std::fs::symlink_metadata(&out) {
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!("--out {} is a symbolic link: the release would be written wherever it points; give the real directory", out.display())
        }
        Ok(meta) if !meta.is_dir() => bail!("--out {} exists and is not a directory", out.display()),
        Ok(_) if std::fs::read_dir(&out).with_context(|| format!("cannot list {}", out.display()))?.next().is_some() => {
            bail!("{} is not empty: remove it or choose another --out", out.display())
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot look at --out {}", out.display())),
    }
    if out.parent().is_none() {
        bail!("--out {} has no parent directory", out.display());
    }
    Ok(out)
}

/// `release`: see the command's long help.
pub fn build(args: &BuildArgs) -> Result<Summary> {
    // --out first: a refusal there costs nothing.
    let out = usable_out(&args.out)?;
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
        Some(k) => Some(sign::check_pinned(k, release.minisign_public_key.as_deref())?),
        None => None,
    };

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
    let date = version::epoch_seconds(&pins.xla.date)?;
    let mtime = date.max(0) as u64;
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
                    Some(dir) => headers::own(&input, dir, api)?,
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

    // The output directory: staged beside it, moved into place at the end;
    // first the staging directories of releases that died there.
    let parent = out.parent().context("--out has no parent directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    for dir in staging::sweep_stale(parent) {
        eprintln!("removed {}, left by an interrupted release", dir.display());
    }
    let staging = staging::Staging::create(parent)?;

    let infos: Vec<Value> = planned.iter().map(|p| version_info(p, &pins, &version, release.build, &pjrtpkgs_commit, modified)).collect();
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).clamp(1, planned.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Written>>>> = Mutex::new((0..planned.len()).map(|_| None).collect());
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
    let mut written = Vec::new();
    for (p, result) in planned.iter().zip(results.into_inner().expect("no panics while holding the lock")) {
        let w = result.expect("every archive was attempted")?;
        let file = format!("{}.tar.gz", p.name);
        archives.push(ArchiveSummary {
            sbom: sbom::file_name(&file),
            file,
            sha256: w.sha256.clone(),
            size: w.size,
            input: p.input.label.clone(),
            backend: p.input.backend.clone(),
            system: p.system.clone(),
            version: p.version.to_string(),
            pjrt_api_version: p.input.api_version.clone(),
            portability: p.portability.clone(),
        });
        written.push(w);
    }

    // What each plugin reports about itself (compat.json), run as archived.
    let mut entries = Vec::new();
    for ((a, p), w) in archives.iter().zip(&planned).zip(&written) {
        let conform = if args.no_conform {
            Err("not run: `release --no-conform`".to_owned())
        } else if p.system != crate::pinfile::host_system() {
            Err(format!("not run: a {} plugin cannot run on this {} machine", p.system, crate::pinfile::host_system()))
        } else {
            eprintln!("conform {} ...", a.file);
            probe_archived(p, &floor, &release.system_libraries, staging.path())
        };
        entries.push(compat_entry(a, p, w, conform, &floor));
    }

    // SBOMs.
    let vendored = sbom::vendored_commits(&repo, &pins.xla.commit).unwrap_or_default();
    let nixpkgs = sbom::nixpkgs_revision(&root);
    for ((a, p), w) in archives.iter().zip(&planned).zip(&written) {
        let doc = sbom_of(a, p, w, &pins, &version, date, pjrtpkgs_commit.as_deref(), &vendored, nixpkgs.as_deref());
        write_new(&staging.path().join(&a.sbom), doc.as_bytes())?;
    }

    // The compatibility feed.
    let feed = compat::Compat {
        schema: compat::SCHEMA,
        release: compat::ReleaseInfo { tag: version.tag(), build: release.build, dev: dev.clone(), glibc_floor: floor.tag.to_owned() },
        xla: compat::XlaInfo { commit: pins.xla.commit.clone(), pjrt_api_version: pins.xla.pjrt_api_version.clone() },
        archives: entries,
    };
    write_new(&staging.path().join(compat::FILE), feed.to_json().as_bytes())?;

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
                Origin::Source => notes::Made::Source,
                Origin::Prebuilt => {
                    let field = |k: &str| p.input.info.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
                    notes::Made::Wheel { package: field("package"), version: field("version") }
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
        // The key that signs, or will: `release --unsigned` then `release
        // sign` (the workflow) signs with the pinned key.
        signed_by: public.as_ref().map(|p| p.to_base64()).or_else(|| release.minisign_public_key.clone()),
        previous: previous.as_ref(),
        header_diff,
        changes: notes::new_entries(&changelog, previous.as_ref().map(|p| p.changelog.as_str())),
    });
    write_new(&staging.path().join(NOTES_FILE), text.as_bytes())?;

    // SHA256SUMS lists every file of the release; the signature binds the tag.
    let listed = sums::of_directory(staging.path())?;
    let sums_text = sums::render(&listed);
    write_new(&staging.path().join(sums::FILE), sums_text.as_bytes())?;
    if let Some(key) = &key {
        let signature = sign::sign(key, sums_text.as_bytes(), &sign::trusted_comment(&version.tag()))?;
        write_new(&staging.path().join(sign::signature_name(sums::FILE)), signature.as_bytes())?;
    }

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
    Ok(Summary {
        version: version.tag(),
        out,
        archives,
        signed_by: public.map(|p| p.to_base64()),
        notes: NOTES_FILE.to_owned(),
        compat: compat::FILE.to_owned(),
        files: listed.into_iter().map(|(name, _)| name).collect(),
    })
}

/// Writes a new file of the release (never over another).
fn write_new(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents).with_context(|| format!("cannot write {}", path.display()))
}

fn arch_of(system: &str) -> &str {
    system.split('-').next().unwrap_or(system)
}

/// Conform on the plugin as archived: its lib/ written to a scratch
/// directory of the staging area (bundled libraries beside it, as in the
/// archive), then removed.
fn probe_archived(p: &Planned, floor: &Floor, extra: &[String], staging: &Path) -> Result<probe::Probed, String> {
    let dir = staging.join(format!(".probe-{}", p.name));
    let run = || -> Result<probe::Probed, String> {
        let files = lib_files(&p.input, floor, extra).map_err(|e| format!("not run: {e:#}"))?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("not run: cannot create {}: {e}", dir.display()))?;
        for (name, data, ..) in &files {
            std::fs::write(dir.join(name), data).map_err(|e| format!("not run: cannot write {}: {e}", dir.join(name).display()))?;
        }
        probe::conform(&dir.join(plugin_lib_name(&p.input.backend)))
    };
    let result = run();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn compat_entry(
    a: &ArchiveSummary,
    p: &Planned,
    w: &Written,
    conform: Result<probe::Probed, String>,
    floor: &Floor,
) -> compat::ArchiveCompat {
    let api: ApiVersion = p.input.api_version.parse().expect("checked when planned");
    let (probed, note) = match conform {
        Ok(probed) => (Some(probed), None),
        Err(note) => (None, Some(note)),
    };
    let mut note = note;
    if let Some(reported) = probed.as_ref().and_then(|p| p.api_version.as_deref()).filter(|r| *r != p.input.api_version) {
        note = Some(format!("conform read PJRT {reported} from the plugin; the release records {}", p.input.api_version));
    }
    let portability = &p.portability;
    compat::ArchiveCompat {
        file: a.file.clone(),
        sha256: a.sha256.clone(),
        size: w.size,
        sbom: a.sbom.clone(),
        backend: a.backend.clone(),
        system: a.system.clone(),
        origin: match p.input.origin {
            Origin::Source => "source".to_owned(),
            Origin::Prebuilt => "prebuilt".to_owned(),
        },
        version: a.version.clone(),
        pjrt: compat::Pjrt {
            api_version: api.to_string(),
            api_major: api.major,
            api_minor: api.minor,
            api_struct_size: probed.as_ref().and_then(|p| p.api_struct_size),
            extensions: probed.as_ref().map(|p| p.extensions.clone()),
        },
        stablehlo: probed.as_ref().and_then(|p| p.stablehlo.clone()),
        conform: compat::Conform {
            ran: probed.is_some(),
            counts: probed.as_ref().map(|p| p.counts.clone()),
            failing: probed.as_ref().map(|p| p.failing.clone()).unwrap_or_default(),
            note,
        },
        loads_with: compat::LoadsWith {
            glibc_floor: floor.tag.to_owned(),
            max_versions: portability.max_versions.clone(),
            needed: portability.needed.clone(),
            bundled: portability.bundled.clone(),
            system: portability.needed.iter().filter(|n| !portability.bundled.contains(n)).cloned().collect(),
            driver: compat::driver_for(&p.input.backend),
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn sbom_of(
    a: &ArchiveSummary,
    p: &Planned,
    w: &Written,
    pins: &Pins,
    release: &ReleaseVersion,
    date: i64,
    pjrtpkgs_commit: Option<&str>,
    vendored: &[(&'static str, String)],
    nixpkgs: Option<&str>,
) -> String {
    let info = &p.input.info;
    let field = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    let toolchain = |k: &str| info.get("toolchains").and_then(|t| t.get(k)).and_then(Value::as_str).map(str::to_owned);
    let made = match p.input.origin {
        Origin::Source => sbom::Made::Source {
            xla_commit: pins.xla.commit.clone(),
            xla_hash: Some(pins.xla.hash.clone()),
            vendored: vendored.to_vec(),
            bazel: toolchain("bazel"),
            nixpkgs: nixpkgs.map(str::to_owned),
        },
        Origin::Prebuilt => sbom::Made::Wheel {
            package: field("package").unwrap_or_default(),
            version: field("version").unwrap_or_default(),
            url: field("url").unwrap_or_default(),
            sha256: field("sha256").unwrap_or_default(),
            library: field("library").unwrap_or_default(),
            license: p.input.license.clone(),
        },
    };
    let mut needs = Vec::new();
    let major = |b: &str| b.trim_start_matches(|c: char| c.is_ascii_alphabetic()).to_owned();
    match p.input.backend.as_str() {
        b @ ("cuda12" | "cuda13") => {
            let unknown = || Some(format!("the CUDA {} the plugin was built for; the exact version is not recorded", major(b)));
            let (cuda, note) = match toolchain("cuda") {
                Some(v) => (v, None),
                None => (major(b), unknown()),
            };
            needs.push(sbom::nvidia("CUDA runtime", cuda, note));
            if let Some(v) = toolchain("cudnn") {
                needs.push(sbom::nvidia("cuDNN", v, None));
            }
            if let Some(v) = toolchain("nccl") {
                needs.push(sbom::nvidia("NCCL", v, None));
            }
            if p.input.origin == Origin::Source {
                let pin = if b == "cuda12" { &pins.cuda12 } else { &pins.cuda13 };
                if let Some(pin) = pin {
                    needs.push(sbom::nvidia("NVSHMEM", pin.nvshmem_version.clone(), Some("XLA's hermetic NVSHMEM pin".to_owned())));
                }
            }
        }
        "rocm7" => needs.push(sbom::Needs {
            name: "ROCm",
            version: toolchain("rocm").unwrap_or_else(|| "7".to_owned()),
            license: serde_json::json!([{ "license": { "name": "AMD ROCm component licences (mostly MIT, Apache-2.0, NCSA)" } }]),
            note: None,
        }),
        _ => {}
    }
    sbom::Sbom {
        archive: &a.file,
        archive_sha256: &a.sha256,
        stem: &p.name,
        version: &a.version,
        tag: &release.tag(),
        backend: &a.backend,
        system: &a.system,
        api_version: &a.pjrt_api_version,
        date,
        pjrtpkgs_commit,
        files: &w.files,
        made,
        needs,
    }
    .to_json()
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

/// Writes `<name>.tar.gz` into `dir`.
fn write_archive(p: &Planned, info: &Value, floor: &Floor, extra: &[String], mtime: u64, dir: &Path) -> Result<Written> {
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
    let prefix = format!("{}/", p.name);
    let files = sbom::file_hashes(entries.iter().map(|e| (e.path.strip_prefix(&prefix).unwrap_or(&e.path), e.contents.as_slice())));

    let path = dir.join(format!("{}.tar.gz", p.name));
    let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let hashing = crate::hashing::Hashing::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let hashing = archive::write_tar_gz(&entries, mtime, hashing).with_context(|| format!("cannot write {}", path.display()))?;
    let (sha, size) = {
        use std::io::Write as _;
        let mut hashing = hashing;
        hashing.flush()?;
        hashing.finish()
    };
    Ok(Written { sha256: sha.to_hex(), size, files })
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
        let data = read_capped(path)?;
        let info = elf::read(&data).with_context(|| format!("{}", path.display()))?;
        // What the loader would find next to it: only through $ORIGIN, and
        // only plain names (a path is opened as itself).
        let dir = path.parent().unwrap_or(Path::new("."));
        let origin = info.search_path().iter().any(|e| *e == "$ORIGIN" || *e == "${ORIGIN}");
        let mut found: Vec<(String, Option<elf::ElfInfo>)> = Vec::new();
        let mut problems = Vec::new();
        for name in info.needed.iter().filter(|n| origin && !n.contains('/')) {
            let candidate = dir.join(name);
            if !candidate.is_file() {
                continue;
            }
            match read_capped(&candidate).and_then(|d| elf::read(&d)) {
                Ok(neighbor) => found.push((name.clone(), Some(neighbor))),
                Err(e) => {
                    problems.push(format!("{} is not a shared library the loader can open: {e:#}", candidate.display()));
                    found.push((name.clone(), None));
                }
            }
        }
        let neighbors: Vec<portability::Neighbor> = found.iter().map(|(name, e)| portability::Neighbor { name, elf: e.as_ref() }).collect();
        let (portability, more) = portability::check(&info, &floor, true, &neighbors, &extra);
        problems.extend(more);
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
        crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&json!({ "floor": floor.tag, "files": reports }))?))?;
    }
    Ok(if refused { ExitCode::from(EXIT_PROBLEMS) } else { ExitCode::SUCCESS })
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Sign a release made with --unsigned, after checking it",
    long_about = "Sign the SHA256SUMS of a release directory made by `release --unsigned` (the release workflow makes it in a job that holds no secret, and signs it here, in a job that runs nothing else). Nothing is signed unless the directory verifies first, as `release verify --unsigned --tag TAG` checks it: every file listed and matching, nothing else, compat.json describing release TAG. The signature's trusted comment is `pjrtpkgs TAG SHA256SUMS`.",
    after_help = "Examples:\n  cargo xtask release sign dist --tag v0.93.1 --key ~/.cache/pjrtpkgs/keys/pjrtpkgs-release.key\n\n\
Environment: PJRTPKGS_RELEASE_KEY_FILE is --key; PJRTPKGS_RELEASE_KEY_PASSWORD decrypts an encrypted key.\n\n\
Exit status: 0 signed; 1 error or refusal (the directory does not verify, it is signed already, the key is not the pinned one)."
)]
pub struct SignArgs {
    /// The release directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The tag being released (the workflow passes the pushed tag).
    #[arg(long, value_name = "TAG", required = true)]
    pub tag: String,
    /// minisign secret key.
    #[arg(long, value_name = "FILE", env = KEY_ENV, required = true)]
    pub key: PathBuf,
}

/// `release sign`: see the command's long help.
pub fn sign_release(args: SignArgs) -> Result<ExitCode> {
    let key = sign::load_secret_key(&args.key)?;
    let pinned = match crate::project::pins_toml() {
        Ok(path) => crate::pinfile::Pins::load(&path)?.release.and_then(|r| r.minisign_public_key),
        Err(_) => None,
    };
    let public = sign::check_pinned(&key, pinned.as_deref())?;
    let sig_path = args.dir.join(sign::signature_name(sums::FILE));
    if std::fs::symlink_metadata(&sig_path).is_ok() {
        bail!("{} exists: the release is signed already", sig_path.display());
    }
    let dir = args.dir.to_str().with_context(|| format!("{} is not a UTF-8 path", args.dir.display()))?;
    let report = verify::verify(dir, None, Some(&args.tag))?;
    if !report.ok {
        bail!("{} does not verify as release {}, so it is not signed:\n  {}", args.dir.display(), args.tag, report.problems.join("\n  "));
    }
    // Sign the very bytes just verified.
    let sums_path = args.dir.join(sums::FILE);
    let sums = std::fs::read(&sums_path).with_context(|| format!("cannot read {}", sums_path.display()))?;
    let listed = sums::parse(&String::from_utf8_lossy(&sums))?;
    let checked: Vec<(String, String)> = report.files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    if listed_sorted != checked {
        bail!("{} changed while it was being verified; nothing signed", sums_path.display());
    }
    let signature = sign::sign(&key, &sums, &sign::trusted_comment(&args.tag))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&sig_path)
        .with_context(|| format!("cannot create {}", sig_path.display()))?;
    std::io::Write::write_all(&mut f, signature.as_bytes()).with_context(|| format!("cannot write {}", sig_path.display()))?;
    eprintln!("signed {} as {} with key {}", sums_path.display(), args.tag, sign::key_id(&public));
    Ok(ExitCode::SUCCESS)
}

/// A shared library named on the command line, refused when larger than
/// any plugin can be.
fn read_capped(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.len() > input::MAX_LIBRARY_BYTES {
        bail!("{} is {} bytes, larger than any plugin: refused unread", path.display(), meta.len());
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(input::MAX_LIBRARY_BYTES + 1).read_to_end(&mut data).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(data)
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
