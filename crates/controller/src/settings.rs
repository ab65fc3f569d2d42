//! Argo CD's settings from the argocd-cm ConfigMap that the Application controller uses.

use berth_engine::health::{Health, HealthOverrides};
use berth_engine::normalize::IgnoreRule;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const IGNORE_PREFIX: &str = "resource.customizations.ignoreDifferences.";
const HEALTH_PREFIX: &str = "resource.customizations.health.";
const OPEN_LIBS_PREFIX: &str = "resource.customizations.useOpenLibs.";
/// The older form: one YAML map from `group/kind` (globs allowed) to `health.lua`, `useOpenLibs` and more.
const CUSTOMIZATIONS: &str = "resource.customizations";

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
    /// Lua health checks (`resource.customizations.health.<group>_<kind>` with
    /// `resource.customizations.useOpenLibs.<group>_<kind>`, and `health.lua` in `resource.customizations`).
    pub health_overrides: Arc<HealthOverrides>,
    /// How objects are tied to their application: `application.resourceTrackingMethod`,
    /// `application.instanceLabelKey` and `installationID` (written on every object berth applies;
    /// objects with another id, or none when set, are not this installation's).
    pub tracking: berth_engine::tracking::Tracking,
    /// `resource.exclusions` / `resource.inclusions`: kinds berth leaves alone.
    pub resource_filter: crate::exclusions::ResourceFilter,
    /// Whether repository URLs may be `file://` (`berth.repositories.allowFileURLs: "true"`, berth's own key,
    /// off by default: a path on berth's disk is no tenant's to read).
    pub allow_file_urls: bool,
    /// `kustomize.buildOptions`, `kustomize.buildOptions.<version>` and `kustomize.path.<version>`: the
    /// binary and build options of each Kustomize render (options berth does not run are warnings).
    pub kustomize: Arc<berth_repo::render::kustomize::KustomizeSettings>,
    /// Whether the cluster berth runs in is a destination (`cluster.inClusterEnabled`; only `"false"` turns
    /// it off, as in Argo CD).
    pub in_cluster_enabled: bool,
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
            health_overrides: Arc::default(),
            tracking: berth_engine::tracking::Tracking::default(),
            resource_filter: crate::exclusions::ResourceFilter::default(),
            allow_file_urls: false,
            kustomize: Arc::default(),
            in_cluster_enabled: true,
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

/// One entry of the `resource.customizations` map; the parts berth does not use yet are skipped.
#[derive(serde::Deserialize, Default)]
struct Customization {
    #[serde(rename = "health.lua", default)]
    health_lua: Option<String>,
    #[serde(rename = "useOpenLibs", default)]
    use_open_libs: Option<bool>,
}

impl Settings {
    /// Reads argocd-cm's `data`; a bad value is reported in `warnings` and its default kept.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Self {
        let mut s = Settings::default();
        if let Some(v) = data.get("timeout.reconciliation") {
            match parse_duration(v) {
                Some(d) if d.is_zero() => s.reconciliation = None,
                Some(d) => s.reconciliation = Some(d),
                None => s.warnings.push(not_a_duration("argocd-cm timeout.reconciliation", v)),
            }
        }
        if let Some(v) = data.get("timeout.reconciliation.jitter") {
            match parse_duration(v) {
                Some(d) => s.jitter = d,
                None => s.warnings.push(not_a_duration("argocd-cm timeout.reconciliation.jitter", v)),
            }
        }
        s.self_heal_paused = data.get("berth.selfHeal.paused").is_some_and(|v| v.trim() == "true");
        s.allow_file_urls =
            data.get(berth_repo::validate::ALLOW_FILE_URLS_KEY).is_some_and(|v| v.trim() == "true");
        s.in_cluster_enabled = !crate::clusters::secret::in_cluster_disabled(data);
        s.tracking = berth_engine::tracking::Tracking::from_argocd_cm(data, &mut s.warnings);
        s.resource_filter = crate::exclusions::ResourceFilter::from_argocd_cm(data, &mut s.warnings);
        s.kustomize =
            Arc::new(berth_repo::render::kustomize::KustomizeSettings::from_argocd_cm(data, &mut s.warnings));
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
        s.health_overrides = Arc::new(read_health_overrides(data, &mut s.warnings));
        s
    }

    /// The health of a live object: argocd-cm's Lua check for its group and kind if there is one, else the
    /// built-in check; `None` for kinds without either and for objects that ignore health checks.
    pub fn health(&self, obj: &serde_json::Value) -> Option<Health> {
        self.health_overrides.assess(obj)
    }
}

/// The health scripts of argocd-cm, each compiled once here so a broken one is reported at once. The split
/// keys win over `resource.customizations`, field by field, as in Argo CD.
fn read_health_overrides(data: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> HealthOverrides {
    // Argo CD's override key → (script, useOpenLibs).
    let mut entries: BTreeMap<String, (Option<String>, Option<bool>)> = BTreeMap::new();
    if let Some(blob) = data.get(CUSTOMIZATIONS) {
        match serde_saphyr::from_str::<BTreeMap<String, Customization>>(blob) {
            Ok(map) => {
                for (key, c) in map {
                    entries.insert(key, (c.health_lua, c.use_open_libs));
                }
            }
            Err(e) => warnings.push(format!("argocd-cm {CUSTOMIZATIONS}: {e}")),
        }
    }
    for (key, value) in data {
        let (group_kind, is_script) =
            match (key.strip_prefix(HEALTH_PREFIX), key.strip_prefix(OPEN_LIBS_PREFIX)) {
                (Some(gk), _) => (gk, true),
                (_, Some(gk)) => (gk, false),
                _ => continue,
            };
        let Some(override_key) = override_key(group_kind) else {
            warnings.push(format!(
                "argocd-cm {key}: the key should end in <group>_<kind>, or <kind> for the core group"
            ));
            continue;
        };
        let entry = entries.entry(override_key).or_default();
        if is_script {
            entry.0 = Some(value.clone());
        } else {
            match parse_bool(value) {
                Some(open) => entry.1 = Some(open),
                None => warnings.push(format!("argocd-cm {key}: {value:?} is not a boolean")),
            }
        }
    }
    let mut overrides = HealthOverrides::default();
    for (key, (script, use_open_libs)) in entries {
        let Some(script) = script.filter(|s| !s.trim().is_empty()) else { continue };
        if let Err(e) = overrides.insert(&key, &script, use_open_libs.unwrap_or(false)) {
            warnings.push(format!("argocd-cm {e}"));
        }
    }
    overrides
}

/// `cert-manager.io_Certificate` → `cert-manager.io/Certificate`; `Pod` (or `_Pod`) → `Pod`, the core group.
fn override_key(group_kind: &str) -> Option<String> {
    match group_kind.split('_').collect::<Vec<_>>().as_slice() {
        [kind] | ["", kind] if !kind.is_empty() => Some(kind.to_string()),
        [group, kind] if !kind.is_empty() => Some(format!("{group}/{kind}")),
        _ => None,
    }
}

/// Go's strconv.ParseBool, which Argo CD reads these flags with.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's longest duration: its `time.Duration` counts nanoseconds in an i64 (2562047h47m16.854775807s, about
/// 292 years). No duration berth reads is longer, so one added to a clock's reading stays countable.
pub const LONGEST_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// A duration as Argo CD reads one (its `parseStringToDuration`): whole seconds (`180`, `-5`), else Go's
/// `time.ParseDuration` (`180s`, `3m`, `1h30m`, `1.5h`, `-1m`, `0`). `None` for anything else and for
/// anything past Go's bounds (±[`LONGEST_DURATION`]), which Go refuses (or, for seconds, wraps around).
pub fn parse_signed_duration(text: &str) -> Option<jiff::SignedDuration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return secs.checked_mul(1_000_000_000).map(jiff::SignedDuration::from_nanos);
    }
    crate::windows::duration::parse(text).ok()
}

/// A duration as [`parse_signed_duration`] reads it (`180s`, `3m`, `1h30m`, `1.5h`, `0`, bare seconds
/// `180`), `None` when negative: never longer than [`LONGEST_DURATION`], never a panic.
pub fn parse_duration(text: &str) -> Option<Duration> {
    parse_signed_duration(text).and_then(|d| Duration::try_from(d).ok())
}

/// The message refusing `value` of `field` as a duration; the value is quoted, escaped and cut short.
pub fn not_a_duration(field: &str, value: &str) -> String {
    format!(
        "{field}: {} is not a duration (Go's time.ParseDuration form, at most 2562047h)",
        berth_repo::validate::shown(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::health::HealthStatus;

    #[test]
    fn file_repository_urls_are_off_unless_argocd_cm_turns_them_on() {
        assert!(!Settings::default().allow_file_urls);
        let on = BTreeMap::from([("berth.repositories.allowFileURLs".to_string(), "true".to_string())]);
        assert!(Settings::from_config_map(&on).allow_file_urls);
        let other = BTreeMap::from([("berth.repositories.allowFileURLs".to_string(), "yes".to_string())]);
        assert!(!Settings::from_config_map(&other).allow_file_urls);
    }

    #[test]
    fn the_in_cluster_is_a_destination_unless_argocd_cm_says_false() {
        assert!(Settings::default().in_cluster_enabled);
        assert!(
            !Settings::from_config_map(&data(&[("cluster.inClusterEnabled", "false")])).in_cluster_enabled
        );
        assert!(Settings::from_config_map(&data(&[("cluster.inClusterEnabled", "true")])).in_cluster_enabled);
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn kustomize_build_options_are_read_and_refused_options_are_warnings_naming_key_and_option() {
        use berth_repo::render::kustomize::LoadRestrictor;
        let s = Settings::from_config_map(&data(&[(
            "kustomize.buildOptions",
            "--load-restrictor LoadRestrictionsNone --enable-helm",
        )]));
        assert_eq!(s.kustomize.build_options.load_restrictor, LoadRestrictor::None);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(
            s.warnings[0].starts_with("argocd-cm kustomize.buildOptions: \"--enable-helm\""),
            "{:?}",
            s.warnings
        );
        assert_ne!(s, Settings::default(), "a change of build options is a change of settings");
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
    fn durations_past_gos_longest_are_refused_not_a_panic() {
        assert_eq!(parse_duration("9223372036854775807ns"), Some(LONGEST_DURATION));
        assert_eq!(parse_duration("2562047h"), Some(Duration::from_secs(2_562_047 * 3600)));
        assert_eq!(parse_duration("9223372036"), Some(Duration::from_secs(9_223_372_036)));
        assert_eq!(parse_duration("9223372036s"), Some(Duration::from_secs(9_223_372_036)));
        for text in [
            "99999999999999999999s",
            "9223372036854775808ns",
            "2562048h",
            "9223372037",
            "18446744073709551615",
            "99999999999999999999",
            "1e400s",
            "NaN",
            "inf",
            "-5s",
            "-5",
            "",
            "s",
            ".s",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
        assert_eq!(parse_duration("-0"), Some(Duration::ZERO));
        assert_eq!(parse_signed_duration("-5"), Some(jiff::SignedDuration::from_secs(-5)));
        assert_eq!(parse_signed_duration("-1m"), Some(jiff::SignedDuration::from_mins(-1)));
    }

    #[test]
    fn a_reconciliation_past_gos_longest_keeps_the_default_with_a_warning_naming_key_and_value() {
        for key in ["timeout.reconciliation", "timeout.reconciliation.jitter"] {
            let s = Settings::from_config_map(&data(&[(key, "99999999999999999999s")]));
            assert_eq!(
                (s.reconciliation, s.jitter),
                (Settings::default().reconciliation, Settings::default().jitter)
            );
            assert_eq!(
                s.warnings,
                [format!(
                    "argocd-cm {key}: \"99999999999999999999s\" is not a duration (Go's time.ParseDuration form, \
                     at most 2562047h)"
                )]
            );
        }
        let long = "9".repeat(500);
        let s = Settings::from_config_map(&data(&[("timeout.reconciliation", &long)]));
        assert!(s.warnings[0].len() < 250 && s.warnings[0].contains('…'), "{:?}", s.warnings);
        let longest = Settings::from_config_map(&data(&[("timeout.reconciliation", "9223372036s")]));
        assert_eq!(longest.reconciliation, Some(Duration::from_secs(9_223_372_036)));
        assert!(longest.warnings.is_empty(), "{:?}", longest.warnings);
    }

    proptest::proptest! {
        #[test]
        fn parse_duration_never_panics_and_never_reads_past_gos_longest(
            text in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[-+]?[0-9.]{0,25}(ns|us|µs|μs|ms|s|m|h|d|e|)([0-9.]{0,12}(s|m|h))?",
            ],
        ) {
            if let Some(d) = parse_duration(&text) {
                proptest::prop_assert!(d <= LONGEST_DURATION, "{text:?} read as {d:?}");
            }
            let _ = not_a_duration("field", &text);
        }
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

    fn object(api_version: &str, kind: &str) -> serde_json::Value {
        serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "status": {"phase": "Failed"}})
    }

    fn health_of(s: &Settings, api_version: &str, kind: &str) -> Option<(HealthStatus, String)> {
        s.health(&object(api_version, kind)).map(|h| (h.status, h.message))
    }

    #[test]
    fn health_scripts_are_read_per_group_kind_and_win_over_the_built_in_checks() {
        let s = Settings::from_config_map(&data(&[
            (
                "resource.customizations.health.cert-manager.io_Certificate",
                "return {status = 'Degraded', message = 'cert'}",
            ),
            ("resource.customizations.health.Pod", "return {status = 'Healthy', message = 'pod'}"),
            ("resource.customizations.health._Service", "return {status = 'Suspended', message = 'svc'}"),
        ]));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            health_of(&s, "cert-manager.io/v1", "Certificate"),
            Some((HealthStatus::Degraded, "cert".into()))
        );
        assert_eq!(health_of(&s, "v1", "Pod"), Some((HealthStatus::Healthy, "pod".into())));
        assert_eq!(health_of(&s, "v1", "Service"), Some((HealthStatus::Suspended, "svc".into())));
        assert_eq!(
            health_of(&s, "v1", "PersistentVolumeClaim"),
            Some((HealthStatus::Unknown, String::new()))
        );
        assert_eq!(health_of(&s, "v1", "ConfigMap"), None);
    }

    #[test]
    fn use_open_libs_is_read_per_group_kind() {
        let script = "return {status = 'Healthy', message = type(os.getenv)}";
        let s = Settings::from_config_map(&data(&[
            ("resource.customizations.health.example.com_Open", script),
            ("resource.customizations.useOpenLibs.example.com_Open", "true"),
            ("resource.customizations.health.example.com_Closed", script),
            ("resource.customizations.useOpenLibs.example.com_Closed", "false"),
        ]));
        assert_eq!(health_of(&s, "example.com/v1", "Open"), Some((HealthStatus::Healthy, "function".into())));
        assert_eq!(health_of(&s, "example.com/v1", "Closed"), Some((HealthStatus::Healthy, "nil".into())));
    }

    #[test]
    fn the_resource_customizations_map_holds_health_scripts_and_wildcards() {
        let blob = r#"
"*.aws.example.com/*":
  health.lua: |
    return {status = "Progressing", message = "any aws"}
example.com/Widget:
  useOpenLibs: true
  health.lua: |
    return {status = "Healthy", message = type(io)}
  actions: |
    discovery.lua: return {}
"#;
        let s = Settings::from_config_map(&data(&[
            ("resource.customizations", blob),
            ("resource.customizations.health.example.com_Gadget", "return {status = 'Degraded'}"),
        ]));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            health_of(&s, "ec2.aws.example.com/v1", "Instance"),
            Some((HealthStatus::Progressing, "any aws".into()))
        );
        assert_eq!(health_of(&s, "example.com/v1", "Widget"), Some((HealthStatus::Healthy, "table".into())));
        assert_eq!(health_of(&s, "example.com/v1", "Gadget"), Some((HealthStatus::Degraded, String::new())));
    }

    #[test]
    fn bad_health_settings_are_warnings() {
        let s = Settings::from_config_map(&data(&[
            ("resource.customizations.health.example.com_Widget", "return {status = "),
            ("resource.customizations.useOpenLibs.example.com_Widget", "yes"),
            ("resource.customizations.health.a_b_C", "return {status = 'Healthy'}"),
            ("resource.customizations", "[not a map"),
        ]));
        assert_eq!(s.warnings.len(), 4, "{:?}", s.warnings);
        assert!(
            s.warnings.iter().any(|w| w.starts_with("argocd-cm resource.customizations: ")),
            "{:?}",
            s.warnings
        );
        assert!(
            s.warnings.iter().any(|w| w.contains("useOpenLibs.example.com_Widget: \"yes\" is not a boolean"))
        );
        assert!(s.warnings.iter().any(|w| w.contains("health.a_b_C: the key should end in <group>_<kind>")));
        assert!(
            s.warnings.iter().any(|w| w.starts_with(
                "argocd-cm health check for example.com/Widget: the script does not compile: health.lua:1:"
            )),
            "{:?}",
            s.warnings
        );
        // The broken script still decides, so the object shows the error rather than passing as healthy.
        assert_eq!(health_of(&s, "example.com/v1", "Widget").map(|h| h.0), Some(HealthStatus::Unknown));
    }

    #[test]
    fn settings_with_the_same_scripts_are_equal() {
        let pairs = [("resource.customizations.health.Pod", "return {status = 'Healthy'}")];
        assert_eq!(Settings::from_config_map(&data(&pairs)), Settings::from_config_map(&data(&pairs)));
        assert_ne!(Settings::from_config_map(&data(&pairs)), Settings::default());
    }
}
