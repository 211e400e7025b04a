//! `reports/check/<protocol>/summary.json` (schema-versioned) and one SVG per counterexample.

use crate::check::report_outcome;
use crate::render::{reproduce_command, svg};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tenure_models::run::{CheckReport, Cutoff, Kind};
use tenure_models::timeline::Frame;
use tenure_models::TenureModel;

/// Bumped on any incompatible change to the summary's shape.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Summary {
    schema_version: u32,
    /// The run's name, also its report directory: the protocol, or `lease-expiry` and
    /// `leadership-service` for the bounded-liveness configurations.
    run: String,
    protocol: String,
    config: ConfigSummary,
    outcome: &'static str,
    complete: bool,
    /// Why an incomplete search stopped: `timeout`, `memory-limit`, or null.
    stopped_by: Option<&'static str>,
    states: usize,
    unique_states: usize,
    max_depth: usize,
    elapsed_secs: f64,
    unique_states_per_sec: f64,
    properties: Vec<PropertySummary>,
    reproduce: String,
}

#[derive(Serialize)]
struct ConfigSummary {
    updaters: u8,
    managers: u8,
    leases: u8,
    tickets_per_unit: u8,
    horizon_ticks: u32,
    tick_secs: f64,
    rate_error_ppm: u32,
    faults: String,
    fault_budget: u8,
    mutant: Option<String>,
    symmetry: bool,
    partial_order: bool,
    renumber: bool,
    /// The property keys `--only` chose (absent: every property).
    only: Option<Vec<&'static str>>,
}

#[derive(Serialize)]
struct PropertySummary {
    name: &'static str,
    key: &'static str,
    id: Option<String>,
    kind: &'static str,
    outcome: String,
    counterexample: Option<Vec<Frame>>,
}

/// The summary of one run's check.
pub fn summary(run: &str, model: &TenureModel, r: &CheckReport) -> Summary {
    let c = &r.config;
    Summary {
        schema_version: SCHEMA_VERSION,
        run: run.to_owned(),
        protocol: c.protocol.to_string(),
        config: ConfigSummary {
            updaters: c.updaters,
            managers: c.managers,
            leases: c.leases,
            tickets_per_unit: c.tickets_per_unit,
            horizon_ticks: c.horizon,
            tick_secs: c.tick.as_secs_f64(),
            rate_error_ppm: c.rate_error_ppm,
            faults: c.faults.to_string(),
            fault_budget: c.fault_budget,
            mutant: c.mutant.map(|m| m.name().to_owned()),
            symmetry: c.symmetry,
            partial_order: c.partial_order,
            renumber: c.renumber,
            only: c
                .only
                .as_ref()
                .map(|only| only.iter().map(|p| p.key()).collect()),
        },
        outcome: report_outcome(r),
        complete: r.complete,
        stopped_by: r.cutoff.map(|c| match c {
            Cutoff::Timeout(_) => "timeout",
            Cutoff::MemoryLimit { .. } => "memory-limit",
        }),
        states: r.states,
        unique_states: r.unique_states,
        max_depth: r.max_depth,
        elapsed_secs: r.elapsed.as_secs_f64(),
        unique_states_per_sec: r.unique_per_sec(),
        properties: r
            .properties
            .iter()
            .map(|p| PropertySummary {
                name: p.name,
                key: p.key,
                id: p.id.map(|i| i.code().to_owned()),
                kind: match p.kind {
                    Kind::Always => "always",
                    Kind::Sometimes => "sometimes",
                },
                outcome: p.outcome.to_string(),
                counterexample: p.counterexample.as_ref().map(|a| model.timeline(a)),
            })
            .collect(),
        reproduce: reproduce_command(c),
    }
}

/// Where the reports went.
pub struct Written {
    pub summary: PathBuf,
    pub(crate) svgs: Vec<(&'static str, PathBuf)>,
}

impl Written {
    /// The picture of the counterexample of property `name`, if one was written.
    pub fn svg_for(&self, name: &str) -> Option<&Path> {
        self.svgs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.as_path())
    }
}

/// Writes the summary and the SVG of every counterexample under `<dir>/check/<protocol>/`,
/// replacing the previous run's files there.
pub fn write_reports(
    dir: &Path,
    run: &str,
    model: &TenureModel,
    r: &CheckReport,
) -> std::io::Result<Written> {
    let here = dir.join("check").join(run);
    std::fs::create_dir_all(&here)?;
    for old in std::fs::read_dir(&here)? {
        let old = old?.path();
        if old.extension().is_some_and(|e| e == "svg") {
            std::fs::remove_file(old)?;
        }
    }
    let mut svgs = Vec::new();
    for p in &r.properties {
        let (Some(actions), Some(id)) = (&p.counterexample, p.id) else {
            continue;
        };
        let path = here.join(format!("{id:?}.svg"));
        let title = format!("{}: {} FAILED ({})", r.config.protocol, p.name, r.config);
        std::fs::write(&path, svg(&title, &model.timeline(actions)))?;
        svgs.push((p.name, path));
    }
    let path = here.join("summary.json");
    let text =
        serde_json::to_string_pretty(&summary(run, model, r)).map_err(std::io::Error::other)?;
    std::fs::write(&path, text + "\n")?;
    Ok(Written {
        summary: path,
        svgs,
    })
}
