//! `tenure check` and `tenure explore`: configuration from flags, the run, and its output.

use crate::render::{print_report, reproduce_command};
use crate::summary::write_reports;
use crate::{CheckArgs, ExploreArgs, ModelArgs, ProtocolArg};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure::mutant::{Mutant, Protocol};
use tenure_models::run::{check, CheckOptions, CheckReport, Outcome, Stop};
use tenure_models::stateright::Model;
use tenure_models::{memory, CheckedProperty, FaultSet, ModelConfig, TenureModel};

fn protocols(arg: ProtocolArg) -> Vec<Protocol> {
    match arg {
        ProtocolArg::All => Protocol::ALL.to_vec(),
        ProtocolArg::Clock => vec![Protocol::Clock],
        ProtocolArg::Lease => vec![Protocol::Lease],
        ProtocolArg::Leadership => vec![Protocol::Leadership],
        ProtocolArg::Presence => vec![Protocol::Presence],
    }
}

fn mutant(name: &Option<String>) -> Result<Option<Mutant>, String> {
    name.as_deref()
        .map(|n| n.parse::<Mutant>().map_err(|e| e.to_string()))
        .transpose()
}

/// The configuration of `protocol` with the user's overrides, validated.
pub fn config(protocol: Protocol, args: &ModelArgs) -> Result<ModelConfig, String> {
    // A mutant's own configuration is the starting point; the user's flags still override it.
    let base = match mutant(&args.mutant)? {
        Some(m) if m.protocol() == protocol => ModelConfig::for_mutant(m),
        _ => ModelConfig::default_for(protocol),
    };
    overridden(base, args)
}

/// What `tenure check` runs, each with the name of its report directory: the protocols asked
/// for, and with `--protocol all` and the built-in sizes also the configurations the default
/// sizes cannot hold: early releases (`lease-release`), and the two bounded-liveness ones (M6
/// needs an abandoned lease to expire, T6 a paused leader's term to run out, within the
/// horizon).
fn runs(args: &CheckArgs, wanted: &[Protocol]) -> Result<Vec<(String, ModelConfig)>, String> {
    let m = &args.model;
    let sized = [
        m.updaters, m.managers, m.leases, m.pingers, m.tickets, m.checks, m.releases,
    ]
    .iter()
    .any(Option::is_some)
        || m.horizon.is_some()
        || m.duration.is_some();
    let liveness = args.protocol == ProtocolArg::All && m.mutant.is_none() && !sized;
    let mut runs = Vec::new();
    for p in wanted {
        runs.push((p.name().to_owned(), config(*p, m)?));
        let extra = match p {
            Protocol::Lease => vec![
                ("lease-release", ModelConfig::release_safety()),
                ("lease-expiry", ModelConfig::expiry_liveness()),
            ],
            Protocol::Leadership => vec![("leadership-service", ModelConfig::service_liveness())],
            _ => Vec::new(),
        };
        for (name, base) in extra.into_iter().filter(|_| liveness) {
            runs.push((name.to_owned(), overridden(base, m)?));
        }
    }
    Ok(runs)
}

/// `c` with the user's flags applied, validated.
fn overridden(mut c: ModelConfig, args: &ModelArgs) -> Result<ModelConfig, String> {
    if let Some(f) = &args.faults {
        c.faults = FaultSet::parse(f).map_err(|e| format!("--faults: {e}"))?;
    }
    if let Some(b) = args.fault_budget {
        c.fault_budget = b;
    }
    if let Some(n) = args.updaters {
        c.updaters = n;
    }
    if let Some(n) = args.managers {
        c.managers = n;
    }
    if let Some(n) = args.leases {
        c.leases = n;
    }
    if let Some(n) = args.pingers {
        c.pingers = n;
    }
    if let Some(n) = args.tickets {
        c.tickets_per_unit = n;
    }
    if let Some(n) = args.checks {
        c.checks = n;
    }
    if let Some(n) = args.releases {
        c.releases = n;
    }
    if let Some(h) = args.horizon {
        c.horizon = h;
    }
    if let Some(secs) = args.duration {
        c.lease_duration = Duration::from_secs(secs);
    }
    if let Some(ppm) = args.rate_error_ppm {
        c.rate_error_ppm = ppm;
    }
    c.symmetry = args.symmetry;
    c.partial_order = !args.no_partial_order;
    c.renumber = !args.no_renumbering;
    c.mutant = mutant(&args.mutant)?;
    if let Some(list) = &args.only {
        c.only = Some(CheckedProperty::parse_list(list).map_err(|e| format!("--only: {e}"))?);
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

fn list_mutants() {
    let width = Mutant::ALL
        .iter()
        .map(|m| m.name().len())
        .max()
        .unwrap_or(0);
    for m in Mutant::ALL {
        println!(
            "{:width$}  {:10}  {:3}  {}",
            m.name(),
            m.protocol().name(),
            format!("{:?}", m.breaks()),
            m.description()
        );
    }
}

/// Progress on a terminal (states, unique states, depth, states/s); nothing in CI or a pipe.
fn progress_bar() -> Option<ProgressBar> {
    if !crate::progress_wanted() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").ok()?);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// Runs `tenure check`.
pub fn run(args: &CheckArgs) -> Result<ExitCode, String> {
    if args.list_mutants {
        list_mutants();
        return Ok(ExitCode::SUCCESS);
    }
    let wanted = match mutant(&args.model.mutant)? {
        Some(m)
            if args.protocol != ProtocolArg::All && protocols(args.protocol) != [m.protocol()] =>
        {
            return Err(format!(
                "--mutant {m} belongs to the {} protocol; drop --protocol or use --protocol {}",
                m.protocol(),
                m.protocol()
            ))
        }
        Some(m) => vec![m.protocol()],
        None => protocols(args.protocol),
    };
    if args.model.only.is_some() && wanted.len() > 1 {
        return Err(
            "--only names properties of one protocol: add --protocol clock|lease|leadership|presence"
                .into(),
        );
    }
    let runs = runs(args, &wanted)?;
    if args.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    let memory_limit = memory_limit(args.max_memory)?;
    let mut reports = Vec::new();
    for (name, c) in &runs {
        let options = CheckOptions {
            threads: args.threads.unwrap_or(CheckOptions::default().threads),
            timeout: args.timeout.map(Duration::from_secs),
            memory_limit,
            stop: c
                .mutant
                .map_or(Stop::Exhausted, |m| Stop::FailureOf(m.breaks())),
        };
        let bar = progress_bar();
        let shared = Arc::new(Mutex::new(bar.clone()));
        let protocol = c.protocol;
        let mut on_progress = move |d: &tenure_models::stateright::report::ReportData| {
            if let Ok(guard) = shared.lock() {
                if let Some(bar) = guard.as_ref() {
                    let secs = d.duration.as_secs_f64().max(1e-3);
                    let held = memory::resident_bytes()
                        .map(|b| format!(", {} held", memory::gib(b)))
                        .unwrap_or_default();
                    bar.set_message(format!(
                        "{protocol}: {} states, {} unique, depth {}, {:.0} states/s{held}",
                        d.total_states,
                        d.unique_states,
                        d.max_depth,
                        d.total_states as f64 / secs
                    ));
                }
            }
        };
        let report = check(c, &options, &mut on_progress);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let model = TenureModel::new(c.clone());
        let written = write_reports(&args.reports, name, &model, &report)
            .map_err(|e| format!("writing reports under {}: {e}", args.reports.display()))?;
        if !args.json {
            print_report(name, &model, &report, &written);
        }
        reports.push((name, model, report));
    }
    if args.json {
        let all: Vec<_> = reports
            .iter()
            .map(|(name, m, r)| crate::summary::summary(name, m, r))
            .collect();
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        println!("{text}");
    }
    let outcomes: Vec<Outcome> = reports.iter().map(|(_, _, r)| r.outcome()).collect();
    Ok(exit_code(&outcomes))
}

/// The memory limit in bytes: `--max-memory` GiB, or the default share of what is available.
fn memory_limit(gib: Option<f64>) -> Result<Option<u64>, String> {
    let Some(gib) = gib else {
        return Ok(memory::default_limit());
    };
    let bytes = gib * f64::from(1u32 << 30);
    if !bytes.is_finite() || bytes < memory::LIMIT_MIN_BYTES as f64 || gib > 1_048_576.0 {
        return Err(format!(
            "--max-memory {gib}: give a size in GiB between {} and 1048576",
            memory::LIMIT_MIN_BYTES as f64 / f64::from(1u32 << 30)
        ));
    }
    if !memory::can_measure() {
        return Err(
            "--max-memory: this system does not show a process's memory (/proc/self/status); drop the flag"
                .into(),
        );
    }
    Ok(Some(bytes as u64))
}

fn exit_code(outcomes: &[Outcome]) -> ExitCode {
    if outcomes.contains(&Outcome::Fail) {
        ExitCode::from(1)
    } else if outcomes.contains(&Outcome::Unknown) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `tenure explore`: stateright's Explorer, bound to 127.0.0.1 only.
pub fn explore(args: &ExploreArgs) -> Result<ExitCode, String> {
    if args.protocol == ProtocolArg::All {
        return Err(
            "explore one protocol at a time: --protocol clock|lease|leadership|presence".into(),
        );
    }
    let protocol = protocols(args.protocol)[0];
    let c = config(protocol, &args.model)?;
    let address = format!("127.0.0.1:{}", args.port);
    println!("Explorer for {c}\nserving on http://{address} (Ctrl-C to stop)");
    println!("the same model checked: {}", reproduce_command(&c));
    if c.partial_order {
        println!(
            "partial-order reduction is on: a due timer or a read that commutes with every \
             other step is offered alone (beside the holders' calls and faults at a tick's \
             start); --no-partial-order offers every order"
        );
    }
    if c.renumber {
        println!(
            "each process's operation ids are renumbered from 0 whenever nothing else refers \
             to them (states differing only in how many operations came before are one); \
             --no-renumbering keeps them as issued"
        );
    }
    let model = TenureModel::new(c);
    println!("properties, by the keys the Explorer shows:");
    for p in model.selected() {
        println!("  {:<8} {}", p.key(), p.name());
    }
    model.checker().serve(address.as_str());
    Ok(ExitCode::SUCCESS)
}

/// For the summary of a report.
pub fn report_outcome(r: &CheckReport) -> &'static str {
    match r.outcome() {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::{protocols, runs};
    use crate::{Cli, Command, ProtocolArg};
    use clap::Parser;

    fn run_names(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(argv).expect("valid arguments");
        let Command::Check(args) = cli.command else {
            panic!("a check command")
        };
        runs(&args, &protocols(args.protocol))
            .expect("valid configurations")
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn the_default_check_adds_the_bounded_liveness_runs_and_sized_ones_do_not() {
        assert_eq!(
            run_names(&["tenure", "check"]),
            [
                "clock",
                "lease",
                "lease-release",
                "lease-expiry",
                "leadership",
                "leadership-service",
                "presence"
            ]
        );
        let sized = run_names(&["tenure", "check", "--horizon", "4"]);
        assert_eq!(sized, ["clock", "lease", "leadership", "presence"]);
        assert_eq!(
            run_names(&["tenure", "check", "--protocol", "lease"]),
            ["lease"]
        );
        assert_eq!(protocols(ProtocolArg::All).len(), 4);
    }
}
