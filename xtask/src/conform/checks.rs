//! The checks, in groups. They run in child processes, dealt into lanes
//! (see `conform::lanes`); the checks of one process run in order and
//! share a [`Ctx`](super::harness::Ctx): the plugin, a client, a device, a
//! compiled program, each made on first use.

mod api;
mod buffers;
mod client;
mod compile;
mod errors;
mod execute;
mod extensions;
mod topology;

use super::harness::{Ctx, Outcome};

pub type CheckFn = Box<dyn Fn(&mut Ctx) -> Outcome>;

pub struct Check {
    /// `group.name`, stable across runs (reports are diffed by it).
    pub id: String,
    /// An optional entry point: any PJRT error means "not offered"
    /// (UNSUPPORTED), not a defect. Plugins report a missing capability
    /// with various codes (the CPU plugin: NOT_FOUND for a missing compiler).
    pub optional: bool,
    pub run: CheckFn,
}

pub struct Group {
    pub name: &'static str,
    pub checks: Vec<Check>,
}

/// A required check.
pub fn check(id: &str, run: impl Fn(&mut Ctx) -> Outcome + 'static) -> Check {
    Check { id: id.to_string(), optional: false, run: Box::new(run) }
}

/// An optional check (see [`Check::optional`]).
pub fn optional(id: &str, run: impl Fn(&mut Ctx) -> Outcome + 'static) -> Check {
    Check { id: id.to_string(), optional: true, run: Box::new(run) }
}

/// Every group, in the order of the report: `api` then `client` run
/// first, in the lead lane (see `conform::lanes::plan`).
pub fn groups() -> Vec<Group> {
    vec![
        Group { name: "api", checks: api::checks() },
        Group { name: "client", checks: client::checks() },
        Group { name: "buffer", checks: buffers::checks() },
        Group { name: "compile", checks: compile::checks() },
        Group { name: "execute", checks: execute::checks() },
        Group { name: "errors", checks: errors::checks() },
        Group { name: "extensions", checks: extensions::checks() },
        Group { name: "topology", checks: topology::checks() },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_belong_to_their_group() {
        let mut seen = std::collections::BTreeSet::new();
        let mut total = 0;
        for group in groups() {
            for check in &group.checks {
                assert!(seen.insert(check.id.clone()), "duplicate check id {}", check.id);
                assert!(!check.id.contains(' '), "{}", check.id);
                total += 1;
            }
        }
        // pypjrt's harness has 63 checks; this suite must not have fewer.
        assert!(total >= 63, "only {total} checks");
    }
}
