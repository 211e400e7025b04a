//! The core stays pure: no runtime, driver, checker or randomness crate anywhere in the
//! dependency graph of the `tenure` library (DESIGN.md: the core is I/O-free, and the drivers
//! bring their own runtime). Dev-dependencies (proptest, criterion) are exempt: they never reach
//! a user's build.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crates the core must never pull in, directly or transitively.
const FORBIDDEN: [&str; 5] = ["tokio", "mongodb", "stateright", "rand", "rand_chacha"];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Names of every package the library of `root` depends on (normal and build edges; from the
/// root itself, normal edges only).
fn library_closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root_id = names
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .expect("root package in metadata");
    let mut seen = BTreeSet::new();
    let mut stack = vec![(root_id, true)];
    while let Some((id, is_root)) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let kinds: Vec<Option<&str>> = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kind"].as_str())
                .collect();
            let follows = kinds
                .iter()
                .any(|k| k.is_none() || (!is_root && *k == Some("build")));
            let pkg = dep["pkg"].as_str().unwrap();
            if follows && seen.insert(names[pkg].to_owned()) {
                stack.push((pkg, false));
            }
        }
    }
    seen
}

#[test]
fn the_core_depends_on_no_runtime_driver_checker_or_rng() {
    let meta = metadata();
    let closure = library_closure(&meta, "tenure");
    // The walk itself works: the core's declared dependencies are found.
    for expected in ["serde", "serde_json", "thiserror"] {
        assert!(
            closure.contains(expected),
            "{expected} missing from {closure:?}"
        );
    }
    let bad: Vec<_> = FORBIDDEN.iter().filter(|f| closure.contains(**f)).collect();
    assert!(bad.is_empty(), "the core depends on {bad:?}: {closure:?}");
}

#[test]
fn the_walk_sees_transitive_dependencies() {
    // proptest (a dev-dependency of the core) depends on rand: walked from proptest, rand is
    // found, so its absence above means something.
    let closure = library_closure(&metadata(), "proptest");
    assert!(closure.contains("rand"), "{closure:?}");
}

/// A `rust-version` such as `1.89` or `1.88.0`, as (major, minor).
fn rust_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The workspace's `rust-version` is the toolchain its users need: at least what every locked
/// dependency declares it needs (a lower one promises builds that fail), and each of the
/// workspace's crates declares that same one.
#[test]
fn the_declared_rust_version_covers_every_locked_dependency() {
    let meta = metadata();
    let packages = meta["packages"].as_array().unwrap();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let declared: BTreeSet<(u32, u32)> = packages
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            let v = p["rust_version"].as_str().unwrap_or("none");
            rust_version(v).unwrap_or_else(|| panic!("{}: rust-version {v:?}", p["name"]))
        })
        .collect();
    assert_eq!(
        declared.len(),
        1,
        "one rust-version for the workspace: {declared:?}"
    );
    let ours = *declared.iter().next().unwrap();
    let needed = packages
        .iter()
        .filter_map(|p| {
            Some((
                rust_version(p["rust_version"].as_str()?)?,
                p["name"].as_str()?,
            ))
        })
        .max()
        .expect("some dependency declares a rust-version");
    assert!(
        needed.0 <= ours,
        "rust-version {}.{} is too low: {} needs {}.{}",
        ours.0,
        ours.1,
        needed.1,
        needed.0 .0,
        needed.0 .1
    );
}
