//! `tenure live --beside-model FAULTS`: the model of the live run's protocol, checked under the
//! faults a server is suspected of, drawn next to the live run's violations on one page. A user
//! sees the failure on the real server and the model's prediction of it side by side, e.g.
//! FerretDB's non-atomic compare-and-swap: `tenure live --server ferretdb --beside-model
//! non-atomic-cas`.

use crate::summary::write_reports;
use crate::ModelArgs;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tenure::mutant::Protocol;
use tenure::property::{PropertyId, Verdict};
use tenure_models::run::{check, CheckOptions, Outcome, Stop};
use tenure_models::{FaultSet, TenureModel};

/// The longest the model check may take; the default configurations settle in seconds.
const MODEL_TIMEOUT: Duration = Duration::from_secs(300);

/// What the model said under the suspected faults.
pub struct ModelVerdict {
    /// The faults, as given.
    pub faults: String,
    /// The properties that failed, each with its counterexample's picture.
    pub failed: Vec<(String, PathBuf)>,
    /// Whether the check settled every property (a timeout leaves some unknown).
    pub complete: bool,
    /// The command that reruns the check.
    pub reproduce: String,
}

/// Checks `faults` before the live run starts, so a typo costs no run.
pub fn validate(faults: &str) -> Result<(), String> {
    FaultSet::parse(faults)
        .map(|_| ())
        .map_err(|e| format!("--beside-model: {e}"))
}

/// Checks `protocol`'s default model under `faults`, stopping at the first counterexample;
/// writes its report and pictures under `reports/check/<protocol>-<faults>/`.
pub fn check_model(protocol: Protocol, faults: &str) -> Result<ModelVerdict, String> {
    let args = ModelArgs {
        faults: Some(faults.to_owned()),
        ..ModelArgs::default()
    };
    let config = crate::check::config(protocol, &args)?;
    let options = CheckOptions {
        timeout: Some(MODEL_TIMEOUT),
        stop: Stop::FirstFailure,
        ..CheckOptions::default()
    };
    let report = check(&config, &options, &mut |_| {});
    let model = TenureModel::new(config.clone());
    let run = format!("{protocol}-{}", faults.replace(',', "+"));
    let written = write_reports(Path::new("reports"), &run, &model, &report)
        .map_err(|e| format!("writing the model's report: {e}"))?;
    let failed = written
        .svgs
        .iter()
        .map(|(name, path)| (name.to_string(), path.clone()))
        .collect();
    let settled = report
        .properties
        .iter()
        .all(|p| p.outcome != Outcome::Unknown);
    Ok(ModelVerdict {
        faults: faults.to_owned(),
        failed,
        complete: report.complete || settled,
        reproduce: crate::render::reproduce_command(&config),
    })
}

/// Writes `DIR/beside-model.html`: the live verdicts and pictures on the left, the model's on
/// the right. `dir` is the live run's report directory, `reports/live/<protocol>`.
pub fn write_page(
    dir: &Path,
    live_title: &str,
    verdicts: &[(PropertyId, Verdict)],
    pictures: &[PathBuf],
    model: &ModelVerdict,
) -> Result<PathBuf, String> {
    let mut live = String::new();
    for (id, v) in verdicts {
        let line = match v {
            Ok(()) => format!("PASS {id}"),
            Err(violation) => format!("FAIL {violation}"),
        };
        let _ = writeln!(live, "<li>{}</li>", escape(&line));
    }
    let mut left = format!("<ul>{live}</ul>");
    for p in pictures {
        left += &image(dir, p);
    }
    let mut right = String::from("<ul>");
    for (name, _) in &model.failed {
        let _ = writeln!(right, "<li>FAIL {}</li>", escape(name));
    }
    if model.failed.is_empty() {
        let what = if model.complete {
            "every property holds"
        } else {
            "no counterexample before the check stopped"
        };
        let _ = writeln!(right, "<li>{what}</li>");
    }
    let _ = writeln!(
        right,
        "</ul><p>rerun: <code>{}</code></p>",
        escape(&model.reproduce)
    );
    for (_, p) in &model.failed {
        right += &image(dir, p);
    }
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>tenure live beside the model</title>\n\
         <style>body{{font-family:sans-serif;display:flex;gap:2em}}div{{flex:1}}img{{width:100%}}</style>\n\
         <div><h2>Live: {}</h2>{left}</div>\n\
         <div><h2>Model under {}</h2>{right}</div>\n",
        escape(live_title),
        escape(&model.faults),
    );
    let file = dir.join("beside-model.html");
    std::fs::write(&file, page).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(file)
}

/// An `<img>` of `picture` (under `reports/`) as seen from `dir` (also under `reports/`).
fn image(dir: &Path, picture: &Path) -> String {
    let up = dir.components().count().saturating_sub(1);
    let below = picture.strip_prefix("reports").unwrap_or(picture);
    let src = format!("{}{}", "../".repeat(up), below.display());
    format!("<p><img src=\"{}\"></p>\n", escape(&src))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_linked_relative_to_the_page() {
        let dir = Path::new("reports/live/lease");
        let tag = image(dir, Path::new("reports/check/lease-non-atomic-cas/F1.svg"));
        assert!(
            tag.contains("src=\"../../check/lease-non-atomic-cas/F1.svg\""),
            "{tag}"
        );
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
