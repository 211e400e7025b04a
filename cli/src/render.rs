//! What a person reads: the verdict table, counterexample timelines, the reproducing command,
//! and the SVG picture of a counterexample (processes and holders as lanes over real time).

use crate::summary::Written;
use std::fmt::Write as _;
use tenure::time::Secs;
use tenure_models::run::{CheckReport, Cutoff, Kind, Outcome};
use tenure_models::timeline::Frame;
use tenure_models::{ModelConfig, TenureModel};

/// The exact command that checks `config` again.
pub fn reproduce_command(c: &ModelConfig) -> String {
    let mut cmd = format!(
        "cargo run --release -p tenure-cli -- check --protocol {} --faults {} --fault-budget {} --updaters {} --horizon {}",
        c.protocol, c.faults, c.fault_budget, c.updaters, c.horizon
    );
    if c.managers > 0 {
        let _ = write!(cmd, " --managers {} --leases {}", c.managers, c.leases);
    }
    if c.pingers > 0 {
        let _ = write!(cmd, " --pingers {}", c.pingers);
    }
    if c.protocol == tenure::mutant::Protocol::Leadership {
        let _ = write!(
            cmd,
            " --tickets {} --releases {}",
            c.tickets_per_unit, c.releases
        );
    }
    if c.protocol == tenure::mutant::Protocol::Lease {
        let _ = write!(cmd, " --checks {} --releases {}", c.checks, c.releases);
    }
    if c.lease_duration != ModelConfig::default_for(c.protocol).lease_duration {
        let _ = write!(cmd, " --duration {}", c.lease_duration.as_secs());
    }
    if c.rate_error_ppm != ModelConfig::default_for(c.protocol).rate_error_ppm {
        let _ = write!(cmd, " --rate-error-ppm {}", c.rate_error_ppm);
    }
    if let Some(m) = c.mutant {
        let _ = write!(cmd, " --mutant {m}");
    }
    if c.symmetry {
        cmd.push_str(" --symmetry");
    }
    if !c.partial_order {
        cmd.push_str(" --no-partial-order");
    }
    if !c.renumber {
        cmd.push_str(" --no-renumbering");
    }
    if let Some(only) = &c.only {
        let keys: Vec<&str> = only.iter().map(|p| p.key()).collect();
        let _ = write!(cmd, " --only {}", keys.join(","));
    }
    cmd
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Prints one protocol's verdicts, and each counterexample as a timeline.
pub fn print_report(run: &str, model: &TenureModel, r: &CheckReport, written: &Written) {
    if run == r.config.protocol.name() {
        println!("{}", r.config);
    } else {
        println!("{run} — {}", r.config);
    }
    println!(
        "  {} unique states ({} generated), depth {}, {:.1} s, {} unique states/s, {}",
        thousands(r.unique_states),
        thousands(r.states),
        r.max_depth,
        r.elapsed.as_secs_f64(),
        thousands(r.unique_per_sec() as usize),
        match (r.complete, r.cutoff) {
            (true, _) => "search complete".to_owned(),
            (false, Some(c)) => format!("search stopped early: {c}"),
            (false, None) => "search stopped early".to_owned(),
        }
    );
    for p in &r.properties {
        println!("  {:<7} {}", p.outcome.to_string(), p.name);
    }
    for p in &r.properties {
        let Some(actions) = &p.counterexample else {
            continue;
        };
        println!(
            "\n  counterexample for {} ({} steps):",
            p.name,
            actions.len()
        );
        for f in model.timeline(actions) {
            println!("{}", frame_line(&f));
            for v in &f.violations {
                println!("        !! {v}");
            }
        }
        if let Some(svg) = written.svg_for(p.name) {
            println!("  picture: {}", svg.display());
        }
    }
    let unsettled = r
        .properties
        .iter()
        .any(|p| p.outcome == Outcome::Unknown && p.kind == Kind::Always);
    let target = r
        .config
        .mutant
        .and_then(|m| r.property(m.breaks()))
        .filter(|p| p.outcome == Outcome::Fail);
    match target {
        Some(p) => println!(
            "  the mutant breaks {} as it should; the search stopped at its first counterexample",
            p.name
        ),
        None if unsettled => println!(
            "  UNKNOWN: the search stopped before covering the state space; {}",
            match r.cutoff {
                Some(Cutoff::MemoryLimit { .. }) =>
                    "shrink the configuration (--horizon, processes, --faults), try --symmetry, or raise --max-memory",
                _ => "raise --timeout or shrink the configuration",
            }
        ),
        None => {}
    }
    if let Some(m) = r.config.mutant.filter(|m| r.property(m.breaks()).is_none()) {
        println!(
            "  note: --only leaves out {}, the property mutant {m} is meant to break",
            m.breaks()
        );
    }
    if r.outcome() != Outcome::Pass {
        println!("  reproduce: {}", reproduce_command(&r.config));
    }
    println!("  summary: {}\n", written.summary.display());
}

/// One timeline line: step, real time, action, global time, local times, leases.
pub fn frame_line(f: &Frame) -> String {
    let locals: Vec<String> = f
        .procs
        .iter()
        .map(|p| {
            format!(
                "{} {}{}",
                p.name.split(' ').next().unwrap_or(""),
                Secs(p.local),
                if p.paused { " (paused)" } else { "" }
            )
        })
        .collect();
    let leases: Vec<String> = f
        .leases
        .iter()
        .map(|l| match (&l.holder, l.expiry) {
            (Some(h), Some(e)) => format!("{}={h}#{} until g{}", l.lease, l.epoch, Secs(e)),
            _ if l.epoch > 0 => format!("{}=vacant#{}", l.lease, l.epoch),
            _ => format!("{}=absent", l.lease),
        })
        .collect();
    let action = if f.step == 0 {
        "initial state"
    } else {
        &f.action
    };
    let mut line = format!(
        "    {:>3}  real {:>7}  {:<42} global {:>7} | {}",
        f.step,
        Secs(f.real).to_string(),
        action,
        Secs(f.global).to_string(),
        locals.join(", ")
    );
    if !leases.is_empty() {
        let _ = write!(line, " | {}", leases.join(", "));
    }
    line
}

const LANE: f64 = 34.0;
const LEFT: f64 = 150.0;
const WIDTH: f64 = 900.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A self-contained SVG: one lane per process (paused stretches shaded), one per holder (the
/// real-time intervals in which it believed it held each lease, labelled with the epoch), and
/// the store's holder per lease; a red line where the property broke.
pub fn svg(title: &str, frames: &[Frame]) -> String {
    let end = frames.last().map_or(1, |f| f.real).max(1);
    let holders: Vec<String> = {
        let mut h: Vec<String> = frames
            .iter()
            .flat_map(|f| f.beliefs.iter().map(|b| b.holder.clone()))
            .collect();
        h.sort();
        h.dedup();
        h
    };
    let procs = frames.first().map_or(0, |f| f.procs.len());
    let leases = frames.first().map_or(0, |f| f.leases.len());
    let lanes = procs + holders.len() + leases;
    let until_max = frames
        .iter()
        .flat_map(|f| f.beliefs.iter().map(|b| b.until))
        .max()
        .unwrap_or(end)
        .max(end);
    // The axis starts at the whole second before the first frame (a live picture or a replay's
    // last steps start late in the run).
    let start = frames.first().map_or(0, |f| f.real) / 1_000_000_000 * 1_000_000_000;
    let span = until_max.saturating_sub(start).max(1) as f64;
    let x = |t: u64| LEFT + (t.saturating_sub(start) as f64 / span) * (WIDTH - LEFT - 20.0);
    let height = 70.0 + LANE * lanes as f64 + 60.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="monospace" font-size="11">"#
    );
    let _ = write!(
        out,
        r#"<text x="10" y="18" font-size="13">{}</text>"#,
        esc(title)
    );
    // Real-time axis, one mark per second.
    let axis_y = 40.0;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#999"/>"##,
        x(until_max)
    );
    let mut t = start;
    while t <= until_max {
        let _ = write!(
            out,
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#ddd"/><text x="{0}" y="{3}" text-anchor="middle">{4}s</text>"##,
            x(t),
            axis_y,
            height - 50.0,
            axis_y - 4.0,
            t / 1_000_000_000
        );
        t += 1_000_000_000;
    }
    let lane_y = |i: usize| 60.0 + LANE * i as f64;
    let mut lane = 0;
    for p in 0..procs {
        let y = lane_y(lane);
        let name = frames.first().map_or("", |f| f.procs[p].name.as_str());
        let _ = write!(
            out,
            r##"<text x="10" y="{}">{}</text><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#444"/>"##,
            y + 4.0,
            esc(name),
            y,
            x(until_max),
            y
        );
        for w in frames.windows(2) {
            if w[0].procs[p].paused && w[1].real > w[0].real {
                let _ = write!(
                    out,
                    r##"<rect x="{}" y="{}" width="{}" height="12" fill="#f0c36d"/>"##,
                    x(w[0].real),
                    y - 6.0,
                    x(w[1].real) - x(w[0].real)
                );
            }
        }
        lane += 1;
    }
    for h in &holders {
        let y = lane_y(lane);
        let _ = write!(
            out,
            r#"<text x="10" y="{}">{} believes</text>"#,
            y + 4.0,
            esc(h)
        );
        let mut drawn = Vec::new();
        for f in frames {
            for b in f.beliefs.iter().filter(|b| &b.holder == h) {
                let key = (b.lease.clone(), b.epoch, b.until);
                if drawn.contains(&key) {
                    continue;
                }
                let from = frames
                    .iter()
                    .find(|g| g.beliefs.iter().any(|c| c == b))
                    .map_or(f.real, |g| g.real);
                let _ = write!(
                    out,
                    r##"<rect x="{}" y="{}" width="{}" height="14" fill="#7fb3e6"/><text x="{}" y="{}">{} #{}</text>"##,
                    x(from),
                    y - 7.0,
                    (x(b.until) - x(from)).max(1.0),
                    x(from) + 3.0,
                    y + 4.0,
                    esc(&b.lease),
                    b.epoch
                );
                drawn.push(key);
            }
        }
        lane += 1;
    }
    for l in 0..leases {
        let y = lane_y(lane);
        let name = frames.first().map_or("", |f| f.leases[l].lease.as_str());
        let _ = write!(
            out,
            r#"<text x="10" y="{}">store {}</text>"#,
            y + 4.0,
            esc(name)
        );
        let mut last = String::new();
        for f in frames {
            let now = match &f.leases[l].holder {
                Some(h) => format!("{h} #{}", f.leases[l].epoch),
                None => "vacant".to_owned(),
            };
            if now != last {
                let _ = write!(
                    out,
                    r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#2a7"/><text x="{3}" y="{4}">{5}</text>"##,
                    x(f.real),
                    y - 8.0,
                    y + 8.0,
                    x(f.real) + 3.0,
                    y + 4.0,
                    esc(&now)
                );
                last = now;
            }
        }
        lane += 1;
    }
    if let Some(f) = frames.iter().find(|f| !f.violations.is_empty()) {
        let _ = write!(
            out,
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="red" stroke-width="2"/><text x="10" y="{3}" fill="red">{4}</text>"##,
            x(f.real),
            axis_y,
            height - 50.0,
            height - 30.0,
            esc(&f.violations.join("; "))
        );
    }
    out.push_str("</svg>\n");
    out
}
