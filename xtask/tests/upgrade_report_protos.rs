//! The protobuf diff in the upgrade report, on real XLA history: PJRT 0.47
//! -> 0.50 (3c8260f6 -> e715c172). Between them, cf1546c4be (2024-04-23,
//! "Rename and better describe flags related to GEMM fusions") renamed
//! `DebugOptions.xla_gpu_dump_autotuned_triton_fusions = 232` to
//! `xla_gpu_dump_autotuned_gemm_fusions`: source-breaking, wire-compatible.
//! Skips when XLA_REPO is unset, fails under CI.

mod support;
mod upgrade_support;

use support::xla_repo;
use upgrade_support::{git, text, Scratch};

const OLD: &str = "3c8260f614901f5cf2dd81530e009db8e6c9789b";
const NEW: &str = "e715c172bd3fd4421f9e45993c6814e8119c1c20";

#[test]
fn upgrade_report_has_the_protobuf_diff() {
    let Some(repo) = xla_repo() else { return };
    let date = git(&repo, &["log", "-1", "--format=%cI", OLD]);
    let bazel = git(&repo, &["show", &format!("{OLD}:.bazelversion")]);
    let s = Scratch::with_real_pjrt_sys(&upgrade_support::pins_for(OLD, &date, "0.47", bazel.lines().next().unwrap().trim()));
    let out = s.upgrade(&repo, &[&NEW[..10], "--dry-run"], &[]);
    let (report, stderr) = text(&out);
    assert!(out.status.success(), "upgrade failed:\n{stderr}");

    let verdict =
        report.lines().find(|l| l.starts_with("**Protobuf verdict: ")).unwrap_or_else(|| panic!("no protobuf verdict:\n{report}"));
    assert!(verdict.starts_with("**Protobuf verdict: BREAKING (1 breaking,") && verdict.contains("wire-compatible"), "{verdict}");
    assert!(
        report.contains("BREAKS a protobuf schema that PJRT consumers serialize")
            && report.contains("Serialized data still reads both ways")
    );
    let section = report.split("\n## Protobuf diff\n").nth(1).unwrap_or_else(|| panic!("no protobuf section:\n{report}"));
    let section = section.split("\n## ").next().unwrap();
    assert!(section.contains("### Protobuf schemas (breaking)") && section.contains("#### `xla/xla.proto`"), "{section}");
    let rename = section
        .lines()
        .find(|l| l.contains("`xla.DebugOptions.xla_gpu_dump_autotuned_gemm_fusions`"))
        .unwrap_or_else(|| panic!("{section}"));
    assert!(rename.contains("| renamed |") && rename.contains("same number 232"), "{rename}");
    // The header diff keeps its own section, without the protobuf part.
    let headers = report.split("\n## Header diff\n").nth(1).unwrap().split("\n## Protobuf diff\n").next().unwrap();
    assert!(!headers.contains("Protobuf schemas"), "{headers}");
    assert!(stderr.contains("WARNING: Protobuf verdict: BREAKING"), "{stderr}");
    assert!(report.contains("Read the protobuf diff: regenerate code"), "next steps name it");
}
