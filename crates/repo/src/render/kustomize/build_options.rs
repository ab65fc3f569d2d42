//! argocd-cm's Kustomize settings, as Argo CD reads them: `kustomize.buildOptions` for the default
//! binary, `kustomize.path.<version>` (or the older `kustomize.version.<version>`) naming another binary,
//! and `kustomize.buildOptions.<version>` replacing the default options for that version. An Application
//! picks a version with `spec.source.kustomize.version`.
//!
//! Build options are written by an admin, but they become arguments of a tool that reads a repository
//! anyone with push access controls. So they are read into an allow-list of what berth can run confined:
//! the load restrictor, nothing else. Every other option is refused by name (a warning of the settings,
//! and a note on a build that fails), never silently dropped.
//!
//! ```
//! # use berth_repo::render::kustomize::{KustomizeSettings, LoadRestrictor};
//! # use std::collections::BTreeMap;
//! let cm = BTreeMap::from([(
//!     "kustomize.buildOptions".to_string(),
//!     "--load-restrictor LoadRestrictionsNone --enable-alpha-plugins".to_string(),
//! )]);
//! let mut warnings = Vec::new();
//! let settings = KustomizeSettings::from_argocd_cm(&cm, &mut warnings);
//! assert_eq!(settings.build_options.load_restrictor, LoadRestrictor::None);
//! assert!(warnings[0].contains("--enable-alpha-plugins"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Build options of the default binary.
pub const BUILD_OPTIONS_KEY: &str = "kustomize.buildOptions";
/// `kustomize.buildOptions.<version>`: build options of one named version.
pub const VERSION_BUILD_OPTIONS_PREFIX: &str = "kustomize.buildOptions.";
/// `kustomize.path.<version>`: the binary of one named version.
pub const VERSION_PATH_PREFIX: &str = "kustomize.path.";
/// `kustomize.version.<version>`: the older spelling of [`VERSION_PATH_PREFIX`].
pub const LEGACY_VERSION_PATH_PREFIX: &str = "kustomize.version.";

/// Where a kustomization may load files from (`--load-restrictor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub enum LoadRestrictor {
    /// Kustomize's default: files only from inside the kustomization's own folder.
    #[default]
    RootOnly,
    /// Files from anywhere; berth still keeps every reference inside the render's copy of the repository.
    None,
}

impl LoadRestrictor {
    /// The value kustomize takes.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadRestrictor::RootOnly => "LoadRestrictionsRootOnly",
            LoadRestrictor::None => "LoadRestrictionsNone",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [LoadRestrictor::RootOnly, LoadRestrictor::None].into_iter().find(|r| r.as_str() == value)
    }
}

/// A build option berth does not pass to kustomize, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RefusedOption {
    /// The argocd-cm key it was written in.
    pub key: String,
    /// The option as written (with its value when it takes one).
    pub option: String,
    pub reason: String,
}

impl fmt::Display for RefusedOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "argocd-cm {}: {:?} is not passed to kustomize: {}", self.key, self.option, self.reason)
    }
}

/// The build options of one binary, as berth runs them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct BuildOptions {
    pub load_restrictor: LoadRestrictor,
    /// What the admin asked for that berth does not run.
    pub refused: Vec<RefusedOption>,
}

/// Options that make kustomize run code from the repository, or a program an option names.
const RUNS_CODE: &[(&str, &str)] = &[
    (
        "--enable-alpha-plugins",
        "it runs the plugins and KRM functions a repository names, and berth runs no code from a repository",
    ),
    ("--enable-exec", "it runs the executables a repository names, and berth runs no code from a repository"),
    (
        "--helm-command",
        "it names a program for kustomize to start, and berth starts no program an option names",
    ),
    (
        "--enable-helm",
        "kustomize would start helm, and berth's render confinement lets a tool start only its own binary; \
         render the chart as a Helm source (or a multi-source Application) instead",
    ),
];
/// Options that only configure something berth refuses.
const NEEDS_REFUSED: &[(&str, &str)] = &[
    ("--helm-kube-version", "it only applies with --enable-helm, which berth refuses"),
    ("--helm-api-versions", "it only applies with --enable-helm, which berth refuses"),
    ("--helm-debug", "it only applies with --enable-helm, which berth refuses"),
    ("--mount", "it configures container functions, which berth does not run"),
    ("--network", "it configures container functions, which berth does not run"),
    ("--network-name", "it configures container functions, which berth does not run"),
    ("--as-current-user", "it configures container functions, which berth does not run"),
    ("--env", "it configures exec and container functions, which berth does not run"),
    ("-e", "it configures exec and container functions, which berth does not run"),
    ("--output", "berth reads the build from kustomize's standard output"),
    ("-o", "berth reads the build from kustomize's standard output"),
];
/// Refused options that take a value (written as the next word when not after `=`).
const TAKES_VALUE: &[&str] = &[
    "--helm-command",
    "--helm-kube-version",
    "--helm-api-versions",
    "--mount",
    "--network-name",
    "--env",
    "-e",
    "--output",
    "-o",
];
const LOAD_RESTRICTOR: &str = "--load-restrictor";
/// Kustomize 3's spelling, which kustomize 5 does not take.
const LEGACY_LOAD_RESTRICTOR: &str = "--load_restrictor";

impl BuildOptions {
    /// Reads `text` (words split on whitespace, as Argo CD splits them) written in argocd-cm `key`.
    pub fn parse(key: &str, text: &str) -> BuildOptions {
        let mut out = BuildOptions::default();
        let mut refuse = |option: String, reason: String| {
            out.refused.push(RefusedOption { key: key.to_string(), option, reason });
        };
        let mut restrictor = None;
        let mut words = text.split_whitespace().peekable();
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) if flag.starts_with('-') => (flag, Some(value)),
                _ => (word, None),
            };
            // The value after `=`, or the next word for a flag that takes one (`--flag value`).
            let mut value_of = |flag: &str| -> Option<String> {
                if let Some(value) = inline {
                    return Some(value.to_string());
                }
                let takes_value =
                    flag == LOAD_RESTRICTOR || flag == LEGACY_LOAD_RESTRICTOR || TAKES_VALUE.contains(&flag);
                if !takes_value {
                    return None;
                }
                words.next_if(|next| !next.starts_with('-')).map(str::to_string)
            };
            // As written: one word, or the flag and the value it took from the next word.
            let written = |value: Option<&String>| match (inline, value) {
                (None, Some(value)) => format!("{flag} {value}"),
                _ => word.to_string(),
            };
            if flag == LOAD_RESTRICTOR {
                match value_of(flag) {
                    Some(value) => match LoadRestrictor::parse(&value) {
                        Some(r) => restrictor = Some(r),
                        None => refuse(
                            written(Some(&value)),
                            "the value must be LoadRestrictionsRootOnly or LoadRestrictionsNone".into(),
                        ),
                    },
                    None => refuse(word.into(), "it needs a value".into()),
                }
            } else if flag == LEGACY_LOAD_RESTRICTOR {
                let value = value_of(flag);
                refuse(
                    written(value.as_ref()),
                    "kustomize 3's spelling: write --load-restrictor LoadRestrictionsNone".into(),
                );
            } else if let Some((_, reason)) = RUNS_CODE.iter().chain(NEEDS_REFUSED).find(|(f, _)| *f == flag)
            {
                let value = value_of(flag);
                refuse(written(value.as_ref()), (*reason).into());
            } else if word.starts_with('-') {
                refuse(word.into(), "not a kustomize build option berth knows how to run confined".into());
            } else {
                refuse(word.into(), "not an option: berth gives kustomize build the path to build".into());
            }
        }
        out.load_restrictor = restrictor.unwrap_or_default();
        out
    }

    /// The options for `kustomize build`, each as `--flag=value` (before berth's `--` and path).
    pub fn args(&self) -> Vec<String> {
        vec![format!("{LOAD_RESTRICTOR}={}", self.load_restrictor.as_str())]
    }

    /// The refusals as one note for an error message; empty when nothing was refused.
    pub fn refusal_note(&self) -> String {
        self.refused.iter().map(|r| format!(" ({r})")).collect()
    }
}

/// One named Kustomize version: its binary and its build options.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct KustomizeVersion {
    pub binary: PathBuf,
    pub build_options: BuildOptions,
}

/// argocd-cm's Kustomize settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct KustomizeSettings {
    /// `kustomize.buildOptions`: for Applications that name no version.
    pub build_options: BuildOptions,
    /// By version name (`v5.4.3` from `kustomize.path.v5.4.3`).
    pub versions: BTreeMap<String, KustomizeVersion>,
}

impl KustomizeSettings {
    /// Reads the Kustomize keys of argocd-cm's `data`; refused options and keys that cannot be used are
    /// added to `warnings`, each naming its key.
    pub fn from_argocd_cm(data: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> Self {
        let mut out = KustomizeSettings::default();
        if let Some(text) = data.get(BUILD_OPTIONS_KEY) {
            out.build_options = BuildOptions::parse(BUILD_OPTIONS_KEY, text);
        }
        // The newer spelling wins over the older one for the same version.
        for prefix in [VERSION_PATH_PREFIX, LEGACY_VERSION_PATH_PREFIX] {
            for (key, binary) in data {
                let Some(version) = key.strip_prefix(prefix) else { continue };
                let binary = binary.trim();
                if version.is_empty() || binary.is_empty() {
                    warnings
                        .push(format!("argocd-cm {key}: needs a version after the prefix and a binary path"));
                    continue;
                }
                if out.versions.contains_key(version) {
                    warnings.push(format!(
                        "argocd-cm {key}: version {version} is already named by {VERSION_PATH_PREFIX}{version}; ignored"
                    ));
                    continue;
                }
                let options_key = format!("{VERSION_BUILD_OPTIONS_PREFIX}{version}");
                let build_options =
                    data.get(&options_key).map(|t| BuildOptions::parse(&options_key, t)).unwrap_or_default();
                out.versions.insert(
                    version.to_string(),
                    KustomizeVersion { binary: PathBuf::from(binary), build_options },
                );
            }
        }
        for key in data.keys() {
            if let Some(version) = key.strip_prefix(VERSION_BUILD_OPTIONS_PREFIX)
                && !out.versions.contains_key(version)
            {
                warnings.push(format!(
                    "argocd-cm {key}: no {VERSION_PATH_PREFIX}{version} names a binary for version {version:?}; ignored"
                ));
            }
        }
        let refused = out
            .build_options
            .refused
            .iter()
            .chain(out.versions.values().flat_map(|v| &v.build_options.refused));
        warnings.extend(refused.map(ToString::to_string));
        out
    }

    /// The binary and build options for an Application's `spec.source.kustomize.version` (`None` or empty:
    /// `default_binary` with `kustomize.buildOptions`); an unknown version is an error naming the field.
    pub fn select<'a>(
        &'a self,
        version: Option<&str>,
        default_binary: &'a Path,
    ) -> Result<(&'a Path, &'a BuildOptions), String> {
        match version.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok((default_binary, &self.build_options)),
            Some(version) => match self.versions.get(version) {
                Some(v) => Ok((&v.binary, &v.build_options)),
                None => Err(format!(
                    "spec.source.kustomize.version: kustomize version {version:?} is not registered \
                     (argocd-cm has no {VERSION_PATH_PREFIX}{version})"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BuildOptions {
        BuildOptions::parse(BUILD_OPTIONS_KEY, text)
    }

    fn refused(options: &BuildOptions) -> Vec<&str> {
        options.refused.iter().map(|r| r.option.as_str()).collect()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_load_restrictor_is_read_in_both_spellings_and_passed_with_equals() {
        for text in ["--load-restrictor LoadRestrictionsNone", "--load-restrictor=LoadRestrictionsNone"] {
            let options = parse(text);
            assert_eq!(options.load_restrictor, LoadRestrictor::None, "{text}");
            assert!(options.refused.is_empty(), "{text}: {:?}", options.refused);
            assert_eq!(options.args(), ["--load-restrictor=LoadRestrictionsNone"]);
        }
        assert_eq!(parse("").args(), ["--load-restrictor=LoadRestrictionsRootOnly"]);
    }

    #[test]
    fn options_that_run_code_are_refused_by_name_with_their_values() {
        let options = parse(
            "--enable-alpha-plugins --enable-exec --helm-command /bin/sh --enable-helm --load-restrictor LoadRestrictionsNone",
        );
        assert_eq!(
            refused(&options),
            ["--enable-alpha-plugins", "--enable-exec", "--helm-command /bin/sh", "--enable-helm"]
        );
        assert_eq!(options.load_restrictor, LoadRestrictor::None, "the allowed option still applies");
        assert!(options.refused.iter().all(|r| r.key == BUILD_OPTIONS_KEY));
        assert!(options.refused[0].to_string().contains("berth runs no code from a repository"));
        assert_eq!(options.args(), ["--load-restrictor=LoadRestrictionsNone"], "no refused word is passed");
    }

    #[test]
    fn unknown_options_bad_values_and_positional_words_are_refused() {
        let options =
            parse("--load-restrictor Everything --frobnicate /etc --load_restrictor none -o=out.yaml");
        assert_eq!(
            refused(&options),
            ["--load-restrictor Everything", "--frobnicate", "/etc", "--load_restrictor none", "-o=out.yaml"]
        );
        assert_eq!(options.load_restrictor, LoadRestrictor::RootOnly);
        assert_eq!(refused(&parse("--load-restrictor")), ["--load-restrictor"]);
    }

    #[test]
    fn a_version_takes_its_binary_and_only_its_own_build_options() {
        let mut warnings = Vec::new();
        let settings = KustomizeSettings::from_argocd_cm(
            &data(&[
                ("kustomize.buildOptions", "--load-restrictor LoadRestrictionsNone"),
                ("kustomize.path.v4.5.7", "/opt/kustomize-4"),
                ("kustomize.version.v3.9.0", "/opt/kustomize-3"),
                ("kustomize.buildOptions.v3.9.0", "--enable-helm"),
            ]),
            &mut warnings,
        );
        let default = Path::new("kustomize");
        let (binary, options) = settings.select(None, default).unwrap();
        assert_eq!((binary, options.load_restrictor), (default, LoadRestrictor::None));
        let (binary, options) = settings.select(Some("v4.5.7"), default).unwrap();
        assert_eq!(binary, Path::new("/opt/kustomize-4"));
        assert_eq!(
            options.load_restrictor,
            LoadRestrictor::RootOnly,
            "versioned options replace the default's"
        );
        let (binary, _) = settings.select(Some("v3.9.0"), default).unwrap();
        assert_eq!(binary, Path::new("/opt/kustomize-3"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("argocd-cm kustomize.buildOptions.v3.9.0: \"--enable-helm\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn an_unregistered_version_is_an_error_naming_the_field() {
        let settings = KustomizeSettings::default();
        let err = settings.select(Some("v9.9.9"), Path::new("kustomize")).unwrap_err();
        assert!(err.starts_with("spec.source.kustomize.version: "), "{err}");
        assert!(err.contains("kustomize.path.v9.9.9"), "{err}");
        assert!(settings.select(Some(""), Path::new("kustomize")).is_ok(), "an empty version is the default");
    }

    #[test]
    fn keys_that_cannot_be_used_are_warnings() {
        let mut warnings = Vec::new();
        let settings = KustomizeSettings::from_argocd_cm(
            &data(&[
                ("kustomize.buildOptions.v5", "--load-restrictor LoadRestrictionsNone"),
                ("kustomize.path.v6", " "),
                ("kustomize.path.v7", "/opt/k7"),
                ("kustomize.version.v7", "/opt/other"),
            ]),
            &mut warnings,
        );
        assert_eq!(settings.versions.keys().collect::<Vec<_>>(), ["v7"]);
        assert_eq!(settings.versions["v7"].binary, Path::new("/opt/k7"));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("argocd-cm kustomize.buildOptions.v5: no kustomize.path.v5"))
        );
        assert!(warnings.iter().any(|w| w.starts_with("argocd-cm kustomize.path.v6:")));
        assert!(warnings.iter().any(|w| w.starts_with("argocd-cm kustomize.version.v7:")));
    }
}
