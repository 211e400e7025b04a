//! The server the live tests run against.
//!
//! `TENURE_TEST_URI` names one (any MongoDB replica set, SecantusDB, ...). Without it, the suite
//! starts SecantusDB through `scripts/substrate` once per test binary. In CI (`CI` set) an
//! unreachable server fails every test, naming the script that starts it; locally the tests
//! say they were skipped and why.
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use tenure_mongo::{Substrate, SubstrateBuilder};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `scripts/substrate <args>` and returns its stdout (a URI for `start`).
pub fn substrate_script(args: &[&str]) -> Result<String, String> {
    let out = Command::new(root().join("scripts/substrate"))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run scripts/substrate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/substrate {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The URI under test, or why there is none.
pub fn uri() -> Result<String, String> {
    static URI: OnceLock<Result<String, String>> = OnceLock::new();
    URI.get_or_init(|| match std::env::var("TENURE_TEST_URI") {
        Ok(u) if !u.is_empty() => Ok(u),
        _ => substrate_script(&["start", "secantus"]),
    })
    .clone()
}

/// `TENURE_TEST_ALLOW_STANDALONE=1` runs the suite against a standalone server such as FerretDB
/// (the adapter's unsafe opt-in): the sequential contract holds there, concurrency may not.
pub fn allow_standalone() -> bool {
    std::env::var_os("TENURE_TEST_ALLOW_STANDALONE").is_some_and(|v| v == "1")
}

/// Whether the tests run in CI, where a missing server is a failure.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A fresh database name per test, so tests never see each other's documents.
pub fn fresh_db(test: &str) -> String {
    let n: u32 = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0));
    format!("t_{test}_{n:x}")
}

/// A builder for the server under test with a per-test database, or `None` (after saying why)
/// when no server is available locally. Panics in CI.
pub fn server(test: &str) -> Option<SubstrateBuilder> {
    init_tracing();
    match uri() {
        Ok(u) => Some(
            Substrate::builder(u)
                .database(fresh_db(test))
                .op_timeout(Duration::from_secs(5))
                .allow_standalone_unsafe(allow_standalone()),
        ),
        Err(why) if in_ci() => panic!(
            "{test}: no MongoDB server for the live tests ({why}); `scripts/substrate start secantus` starts one, or set TENURE_TEST_URI"
        ),
        Err(why) => {
            eprintln!("SKIPPED {test}: no MongoDB server ({why}); run `scripts/substrate start secantus` or set TENURE_TEST_URI");
            None
        }
    }
}

/// RUST_LOG=tenure_mongo=debug shows what the workers do.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts a server of the test's own through `scripts/substrate start <args>` (whatever
/// `TENURE_TEST_URI` says: the test needs a particular setup) and returns its URI, or `None`
/// after saying why locally. Panics in CI.
pub fn own_server(test: &str, args: &[&str]) -> Option<String> {
    init_tracing();
    let mut all = vec!["start"];
    all.extend_from_slice(args);
    match substrate_script(&all) {
        Ok(uri) => Some(uri),
        Err(why) if in_ci() => panic!("{test}: {why}"),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// Connects to the server under test with a per-test database.
pub async fn connect(test: &str) -> Option<Substrate> {
    let builder = server(test)?;
    Some(
        builder
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{test}: {e}")),
    )
}

/// `Some(substrate)` or return from the test (skipped locally, see [`server`]).
#[macro_export]
macro_rules! live {
    ($name:expr) => {
        match common::connect($name).await {
            Some(s) => s,
            None => return,
        }
    };
}
