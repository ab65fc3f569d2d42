//! `berth admin settings resource-overrides health|ignore-differences FILE --argocd-cm-path CM.yaml`: try
//! argocd-cm's resource customizations on one object offline, as `argocd admin settings resource-overrides`
//! does. The settings are read exactly as the controller reads them.

use crate::output::out;
use anyhow::{Context, Result, bail};
use berth_controller::settings::Settings;
use berth_engine::normalize;
use berth_engine::resource::{ResourceKey, split_api_version};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Check argocd-cm settings offline.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum SettingsCommand {
    /// Try resource customizations (health checks, ignoreDifferences) on an object.
    ResourceOverrides {
        #[command(subcommand)]
        command: OverridesCommand,
    },
}

#[derive(Subcommand, Debug)]
enum OverridesCommand {
    /// Print the object's health as the controller would assess it (custom Lua check, else built-in).
    Health(ObjectArgs),
    /// Print the fields argocd-cm's ignoreDifferences remove from the object.
    IgnoreDifferences(ObjectArgs),
}

#[derive(Args, Debug)]
struct ObjectArgs {
    /// The object, as YAML or JSON.
    file: PathBuf,
    /// The argocd-cm ConfigMap, as YAML or JSON.
    #[arg(long, value_name = "CM.yaml")]
    argocd_cm_path: PathBuf,
}

pub fn run(args: AdminArgs) -> Result<()> {
    let AdminCommand::Settings { command: SettingsCommand::ResourceOverrides { command } } = args.command;
    let out = match command {
        OverridesCommand::Health(args) => {
            let (obj, settings) = load(&args)?;
            health_report(&obj, &settings)?
        }
        OverridesCommand::IgnoreDifferences(args) => {
            let (obj, settings) = load(&args)?;
            ignore_differences_report(&obj, &settings)?
        }
    };
    out!("{out}")?;
    Ok(())
}

/// The object and the settings, with the settings' warnings on stderr.
fn load(args: &ObjectArgs) -> Result<(serde_json::Value, Settings)> {
    let settings = read_settings(&args.argocd_cm_path)?;
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    Ok((read_yaml(&args.file)?, settings))
}

/// `STATUS:` and `MESSAGE:` lines, or why the object has no health.
fn health_report(obj: &serde_json::Value, settings: &Settings) -> Result<String> {
    Ok(match settings.health(obj) {
        Some(health) => format!("STATUS: {}\nMESSAGE: {}\n", health.status, health.message),
        None if berth_engine::health::ignores_healthcheck(obj) => format!(
            "Health is not assessed: the object is annotated {}: \"true\"\n",
            berth_engine::health::IGNORE_HEALTHCHECK_ANNOTATION
        ),
        None => format!("Health script is not configured for '{}'\n", group_kind(obj)),
    })
}

/// Each field the ignoreDifferences rules remove, as a JSON pointer with the value it held.
fn ignore_differences_report(obj: &serde_json::Value, settings: &Settings) -> Result<String> {
    let key = ResourceKey::of(obj).context("the object needs apiVersion, kind and metadata.name")?;
    if !settings.ignore_rules.iter().any(|r| r.matches(&key)) {
        return Ok(format!("Ignore differences are not configured for '{}'\n", group_kind(obj)));
    }
    let mut normalized = obj.clone();
    // The object stands in for the live one: its own managedFields decide managedFieldsManagers.
    normalize::apply_ignore_rules(&mut normalized, obj, &key, &settings.ignore_rules)?;
    let mut removed = Vec::new();
    removed_fields(obj, &normalized, String::new(), &mut removed);
    if removed.is_empty() {
        return Ok("No fields are ignored by ignoreDifferences settings\n".to_string());
    }
    let mut out = String::from("Following fields are ignored:\n\n");
    for (path, value) in removed {
        writeln!(out, "- {path}: {value}")?;
    }
    Ok(out)
}

/// The fields of `original` missing from `kept` (which is `original` with fields removed), by JSON pointer.
/// List items are matched in order, so a removed item is named by its own index.
fn removed_fields<'a>(
    original: &'a serde_json::Value,
    kept: &serde_json::Value,
    path: String,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    use serde_json::Value::{Array, Object};
    match (original, kept) {
        (Object(fields), Object(kept_fields)) => {
            for (key, value) in fields {
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                match kept_fields.get(key) {
                    Some(kept_value) => removed_fields(value, kept_value, child, out),
                    None => out.push((child, value)),
                }
            }
        }
        (Array(items), Array(kept_items)) => {
            let mut next = 0;
            for (i, item) in items.iter().enumerate() {
                let child = format!("{path}/{i}");
                let rest_match_one_to_one = items.len() - i == kept_items.len() - next;
                match kept_items.get(next) {
                    Some(k) if rest_match_one_to_one || pruned_from(k, item) => {
                        removed_fields(item, k, child, out);
                        next += 1;
                    }
                    _ => out.push((child, item)),
                }
            }
        }
        _ if original == kept => {}
        _ => out.push((if path.is_empty() { "/".into() } else { path }, original)),
    }
}

/// Whether `kept` could be `original` with some fields removed.
fn pruned_from(kept: &serde_json::Value, original: &serde_json::Value) -> bool {
    match (kept, original) {
        (serde_json::Value::Object(k), serde_json::Value::Object(o)) => {
            k.iter().all(|(key, v)| o.get(key).is_some_and(|ov| pruned_from(v, ov)))
        }
        _ => kept == original,
    }
}

/// `group/kind` as Argo CD's messages name it (`/Kind` for the core group).
fn group_kind(obj: &serde_json::Value) -> String {
    let (group, _) = obj["apiVersion"].as_str().map(split_api_version).unwrap_or_default();
    format!("{group}/{}", obj["kind"].as_str().unwrap_or_default())
}

/// Settings from an argocd-cm manifest, through the same parser as the controller's.
fn read_settings(path: &Path) -> Result<Settings> {
    let cm = read_yaml(path)?;
    let mut data = BTreeMap::new();
    for (key, value) in cm["data"].as_object().into_iter().flatten() {
        // Kubernetes holds only strings; a file written by hand may leave `true` or `1` unquoted.
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => value.to_string(),
            serde_json::Value::Null => String::new(),
            _ => bail!("{}: data.{key} is not a string", path.display()),
        };
        data.insert(key.clone(), text);
    }
    Ok(Settings::from_config_map(&data))
}

/// One object from a YAML or JSON file.
fn read_yaml(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if !value.is_object() {
        bail!("{}: expected one object", path.display());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_config_map(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn health_report_names_objects_without_a_check() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(
            health_report(&cm, &settings(&[])).unwrap(),
            "Health script is not configured for '/ConfigMap'\n"
        );
        let ignored = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
            "annotations": {"argocd.argoproj.io/ignore-healthcheck": "true"}}});
        assert_eq!(
            health_report(&ignored, &settings(&[])).unwrap(),
            "Health is not assessed: the object is annotated argocd.argoproj.io/ignore-healthcheck: \"true\"\n"
        );
    }

    #[test]
    fn removed_fields_name_removed_list_items_by_their_own_index() {
        let original =
            json!({"a": 1, "list": [{"n": "x", "v": 1}, {"n": "y"}, {"n": "z", "v": 3}], "keep": [1, 2]});
        let kept = json!({"list": [{"n": "x"}, {"n": "z", "v": 3}], "keep": [1, 2]});
        let mut removed = Vec::new();
        removed_fields(&original, &kept, String::new(), &mut removed);
        let removed: Vec<(String, String)> = removed.into_iter().map(|(p, v)| (p, v.to_string())).collect();
        assert_eq!(
            removed,
            [
                ("/a".to_string(), "1".to_string()),
                ("/list/0/v".into(), "1".into()),
                ("/list/1".into(), "{\"n\":\"y\"}".into())
            ]
        );
    }

    #[test]
    fn ignore_differences_report_says_when_nothing_matches_or_nothing_is_removed() {
        let deployment =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {}});
        assert_eq!(
            ignore_differences_report(&deployment, &settings(&[])).unwrap(),
            "Ignore differences are not configured for 'apps/Deployment'\n"
        );
        let rule = [(
            "resource.customizations.ignoreDifferences.apps_Deployment",
            "jsonPointers:\n- /spec/replicas\n",
        )];
        assert_eq!(
            ignore_differences_report(&deployment, &settings(&rule)).unwrap(),
            "No fields are ignored by ignoreDifferences settings\n"
        );
    }
}
