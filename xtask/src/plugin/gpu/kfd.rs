//! The AMD GPUs the kernel driver (amdgpu's KFD) lists, from
//! `/sys/class/kfd/kfd/topology/nodes/*/properties`: each GPU node has a
//! non-zero `gfx_target_version` (90010 for gfx90a); CPU nodes have 0.

use std::path::Path;

/// The GPUs' gfx names, by node; `None` when there is no KFD (no amdgpu
/// driver loaded, or not Linux).
pub fn gpus(topology: &Path) -> Option<Vec<String>> {
    let nodes = std::fs::read_dir(topology.join("nodes")).ok()?;
    let mut found: Vec<(u32, String)> = Vec::new();
    for node in nodes.flatten() {
        let Ok(text) = std::fs::read_to_string(node.path().join("properties")) else { continue };
        let version =
            text.lines().find_map(|l| l.strip_prefix("gfx_target_version ")).and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(0);
        if version != 0 {
            let index = node.file_name().to_str().and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
            found.push((index, super::offload_bundle::gfx_name(version)));
        }
    }
    found.sort();
    Some(found.into_iter().map(|(_, n)| n).collect())
}

pub const TOPOLOGY: &str = "/sys/class/kfd/kfd/topology";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gpu_nodes_and_skips_cpus() {
        let dir = tempfile::tempdir().unwrap();
        for (node, version) in [("0", 0), ("1", 90010), ("2", 110000)] {
            let d = dir.path().join("nodes").join(node);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("properties"), format!("cpu_cores_count 0\ngfx_target_version {version}\n")).unwrap();
        }
        assert_eq!(gpus(dir.path()).unwrap(), ["gfx90a", "gfx1100"]);
        assert_eq!(gpus(&dir.path().join("nope")), None);
    }
}
