//! Argo CD's settings from the argocd-cm ConfigMap that the Application controller uses.

use berth_engine::normalize::IgnoreRule;
use std::collections::BTreeMap;
use std::time::Duration;

const IGNORE_PREFIX: &str = "resource.customizations.ignoreDifferences.";

/// The controller's view of argocd-cm.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How often every application asks git for new commits; `None` turns polling off (`0`).
    pub reconciliation: Option<Duration>,
    /// Up to this much is added to each application's polling period, spreading the load.
    pub jitter: Duration,
    /// System-wide ignoreDifferences (`resource.customizations.ignoreDifferences.<group_kind>` and `.all`).
    pub ignore_rules: Vec<IgnoreRule>,
    /// Emergency switch (`berth.selfHeal.paused: "true"`): drift is reported but not reverted.
    pub self_heal_paused: bool,
    /// Problems found while reading the settings, reported on every application.
    pub warnings: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            reconciliation: Some(Duration::from_secs(120)),
            jitter: Duration::from_secs(60),
            ignore_rules: Vec::new(),
            self_heal_paused: false,
            warnings: Vec::new(),
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IgnoreSpec {
    #[serde(default)]
    json_pointers: Vec<String>,
    #[serde(default)]
    jq_path_expressions: Vec<String>,
    #[serde(default)]
    managed_fields_managers: Vec<String>,
}

impl Settings {
    /// Reads argocd-cm's `data`; a bad value is reported in `warnings` and its default kept.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Self {
        let mut s = Settings::default();
        if let Some(v) = data.get("timeout.reconciliation") {
            match parse_duration(v) {
                Some(d) if d.is_zero() => s.reconciliation = None,
                Some(d) => s.reconciliation = Some(d),
                None => s.warnings.push(format!("argocd-cm timeout.reconciliation: {v:?} is not a duration")),
            }
        }
        if let Some(v) = data.get("timeout.reconciliation.jitter") {
            match parse_duration(v) {
                Some(d) => s.jitter = d,
                None => s
                    .warnings
                    .push(format!("argocd-cm timeout.reconciliation.jitter: {v:?} is not a duration")),
            }
        }
        s.self_heal_paused = data.get("berth.selfHeal.paused").is_some_and(|v| v.trim() == "true");
        for (key, value) in data {
            let Some(group_kind) = key.strip_prefix(IGNORE_PREFIX) else { continue };
            let spec: IgnoreSpec = match serde_saphyr::from_str(value) {
                Ok(spec) => spec,
                Err(e) => {
                    s.warnings.push(format!("argocd-cm {key}: {e}"));
                    continue;
                }
            };
            let (group, kind) = if group_kind == "all" {
                (None, "*".to_string())
            } else {
                match group_kind.rsplit_once('_') {
                    Some((g, k)) => (Some(g.to_string()), k.to_string()),
                    None => (Some(String::new()), group_kind.to_string()),
                }
            };
            s.ignore_rules.push(IgnoreRule {
                group,
                kind,
                name: None,
                namespace: None,
                json_pointers: spec.json_pointers,
                jq_path_expressions: spec.jq_path_expressions,
                managed_fields_managers: spec.managed_fields_managers,
            });
        }
        s
    }
}

/// Go-style durations (`180s`, `3m`, `1h30m`, `1.5h`, `0`) and bare seconds (`180`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(parse_duration("180s"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn reconciliation_defaults_to_two_minutes_and_zero_turns_polling_off() {
        assert_eq!(Settings::from_config_map(&data(&[])).reconciliation, Some(Duration::from_secs(120)));
        assert_eq!(Settings::from_config_map(&data(&[("timeout.reconciliation", "0")])).reconciliation, None);
        assert_eq!(
            Settings::from_config_map(&data(&[("timeout.reconciliation", "30s")])).reconciliation,
            Some(Duration::from_secs(30))
        );
        let bad = Settings::from_config_map(&data(&[("timeout.reconciliation", "often")]));
        assert_eq!(bad.reconciliation, Some(Duration::from_secs(120)));
        assert!(bad.warnings[0].contains("timeout.reconciliation"));
    }

    #[test]
    fn system_wide_ignore_differences_are_read_per_group_kind_and_for_all() {
        let s = Settings::from_config_map(&data(&[
            (
                "resource.customizations.ignoreDifferences.apps_Deployment",
                "jsonPointers:\n- /spec/replicas\n",
            ),
            (
                "resource.customizations.ignoreDifferences.all",
                "managedFieldsManagers:\n- kube-controller-manager\n",
            ),
            (
                "resource.customizations.ignoreDifferences.admissionregistration.k8s.io_MutatingWebhookConfiguration",
                "jqPathExpressions:\n- .webhooks[]?.clientConfig.caBundle\n",
            ),
        ]));
        assert_eq!(s.ignore_rules.len(), 3);
        let dep = s.ignore_rules.iter().find(|r| r.kind == "Deployment").unwrap();
        assert_eq!(
            (dep.group.as_deref(), dep.json_pointers.as_slice()),
            (Some("apps"), &["/spec/replicas".to_string()][..])
        );
        let all = s.ignore_rules.iter().find(|r| r.kind == "*").unwrap();
        assert_eq!(all.group, None);
        let hook = s.ignore_rules.iter().find(|r| r.kind == "MutatingWebhookConfiguration").unwrap();
        assert_eq!(hook.group.as_deref(), Some("admissionregistration.k8s.io"));
    }
}
