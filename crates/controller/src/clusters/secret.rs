//! Argo CD cluster Secrets (label `argocd.argoproj.io/secret-type: cluster`, in the control namespace) read
//! as Argo CD reads them, and turned into the [`kube::Config`] that reaches the cluster.
//!
//! Nothing here talks to an API server. Credentials never reach a message: errors name the Secret and the
//! key or field, `Debug` shows `<redacted>` for tokens, passwords, keys and certificates.
//!
//! ```
//! use berth_controller::clusters::secret::ClusterSecret;
//! use k8s_openapi::api::core::v1::Secret;
//! let secret: Secret = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "prod", "namespace": "argocd",
//!                  "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
//!     "stringData": {"name": "prod", "server": "https://prod.example.com:6443/",
//!                    "config": r#"{"bearerToken": "t0k3n", "tlsClientConfig": {"insecure": true}}"#},
//! })).unwrap();
//! let cluster = ClusterSecret::from_secret(&secret).unwrap();
//! assert_eq!(cluster.server, "https://prod.example.com:6443");
//! let config = cluster.kube_config(false).unwrap();
//! assert!(config.accept_invalid_certs);
//! ```

use berth_api::destination::IN_CLUSTER_SERVER;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, ExecInteractiveMode, Kubeconfig, KubeconfigError, NamedAuthInfo,
    NamedCluster, NamedContext,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The argocd-cm key that, set to `"false"`, turns the in-cluster destination off.
pub const IN_CLUSTER_ENABLED_KEY: &str = "cluster.inClusterEnabled";

/// Whether argocd-cm turns the in-cluster destination off (only the exact value `"false"` does, as in
/// Argo CD; the key missing or anything else leaves it on).
pub fn in_cluster_disabled(argocd_cm: &BTreeMap<String, String>) -> bool {
    argocd_cm.get(IN_CLUSTER_ENABLED_KEY).is_some_and(|v| v == "false")
}

/// A cluster Secret that cannot be used; the message names the Secret and the key or `config` field, never
/// a credential.
#[derive(Debug, thiserror::Error)]
pub enum ClusterSecretError {
    /// A required key (`server`) is absent or empty.
    #[error("cluster Secret {secret}: `{key}` is missing or empty")]
    Missing { secret: String, key: &'static str },
    /// A key's value is not UTF-8.
    #[error("cluster Secret {secret}: `{key}` is not UTF-8 text")]
    NotText { secret: String, key: String },
    /// `field` is a path in the `config` JSON (`tlsClientConfig.caData`), or `config` itself.
    #[error("cluster Secret {secret}: config.{field}: {problem}")]
    Config { secret: String, field: String, problem: String },
    /// `server` is not a URL kube can use.
    #[error("cluster Secret {secret}: `server` cannot be used as a URL: {problem}")]
    Server { secret: String, problem: String },
    /// The Secret needs a credential plugin and the caller did not allow plugins.
    #[error(
        "cluster Secret {secret}: execProviderConfig is not allowed: berth runs no credential plugins \
         unless exec providers are enabled (command `{command}`)"
    )]
    ExecNotAllowed { secret: String, command: String },
    /// The Secret needs Argo CD's `argocd-k8s-auth` (EKS through IAM).
    #[error(
        "cluster Secret {secret}: awsAuthConfig is not supported: berth has no argocd-k8s-auth; use \
         execProviderConfig (e.g. `aws eks get-token`) or a bearerToken"
    )]
    AwsAuthUnsupported { secret: String },
}

/// What a cluster Secret says, as Argo CD reads it: `data` (and `stringData`, which wins, as the API server
/// merges it) keys `name`, `server`, `config`, `namespaces`, `clusterResources`, `project`.
#[derive(Clone, PartialEq)]
pub struct ClusterSecret {
    /// The cluster's name (`spec.destination.name`); empty when the Secret has none (Argo CD reads no
    /// default: only `argocd cluster add` writes the server there).
    pub name: String,
    /// The API server URL without trailing slashes, the form Argo CD compares destinations in.
    pub server: String,
    /// The only namespaces berth may manage there (blanks dropped); empty: all.
    pub namespaces: Vec<String>,
    /// Whether cluster-scoped objects are managed although `namespaces` is set; only `"true"` says so.
    pub cluster_resources: bool,
    /// The AppProject the cluster is scoped to (`project`), if any.
    pub project: Option<String>,
    /// The Secret's labels as they are (the ApplicationSet cluster generator offers every one).
    pub labels: BTreeMap<String, String>,
    /// The Secret's annotations as they are.
    pub annotations: BTreeMap<String, String>,
    /// How to connect.
    pub config: ClusterConfig,
    /// The Secret's own name (`metadata.name`).
    pub secret_name: String,
}

/// The `config` JSON of a cluster Secret. Empty strings read as absent, as Go's zero values do.
#[derive(Clone, Default, PartialEq)]
pub struct ClusterConfig {
    /// `bearerToken`.
    pub bearer_token: Option<String>,
    /// `username` for basic auth.
    pub username: Option<String>,
    /// `password` for basic auth.
    pub password: Option<String>,
    /// `tlsClientConfig`.
    pub tls_client_config: TlsClientConfig,
    /// `execProviderConfig`.
    pub exec_provider_config: Option<ExecProviderConfig>,
    /// `awsAuthConfig`.
    pub aws_auth_config: Option<AwsAuthConfig>,
    /// `proxyUrl`.
    pub proxy_url: Option<String>,
    /// `disableCompression`.
    pub disable_compression: bool,
}

/// `config.tlsClientConfig`; the PEM data is kept decoded from its base64.
#[derive(Clone, Default, PartialEq)]
pub struct TlsClientConfig {
    /// Skip verifying the server's certificate.
    pub insecure: bool,
    /// The name to check the server's certificate against, instead of the URL's host.
    pub server_name: Option<String>,
    /// PEM certificates of the authorities to trust.
    pub ca_data: Option<Vec<u8>>,
    /// PEM client certificate.
    pub cert_data: Option<Vec<u8>>,
    /// PEM client key.
    pub key_data: Option<Vec<u8>>,
}

/// `config.execProviderConfig`: a credential plugin, run to get a token or a client certificate.
#[derive(Clone, Default, PartialEq)]
pub struct ExecProviderConfig {
    /// `command`: the plugin to run.
    pub command: String,
    /// `args`.
    pub args: Vec<String>,
    /// `env`: variables set for the plugin.
    pub env: BTreeMap<String, String>,
    /// `apiVersion` of the ExecCredential exchanged.
    pub api_version: Option<String>,
    /// `installHint`: shown when the command is missing.
    pub install_hint: Option<String>,
}

/// `config.awsAuthConfig`: EKS credentials through IAM (which berth does not run).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AwsAuthConfig {
    /// `clusterName`.
    pub cluster_name: String,
    /// `roleARN`.
    pub role_arn: Option<String>,
    /// `profile`.
    pub profile: Option<String>,
}

impl ClusterSecret {
    /// Reads a cluster Secret. Fails when `server` is missing, a key is not text, or `config` is not the
    /// JSON Argo CD expects (wrong types, bad base64 in `tlsClientConfig`).
    pub fn from_secret(secret: &Secret) -> Result<Self, ClusterSecretError> {
        let data = SecretData::of(secret);
        let text = |key: &str| data.text(key);

        let server = text("server")?.trim_end_matches('/');
        if server.is_empty() {
            return Err(ClusterSecretError::Missing { secret: data.label.clone(), key: "server" });
        }
        let config_text = text("config")?;
        // Argo CD parses `config` only when it is not empty.
        let config = if config_text.is_empty() {
            ClusterConfig::default()
        } else {
            ClusterConfig::parse(config_text).map_err(|(field, problem)| ClusterSecretError::Config {
                secret: data.label.clone(),
                field,
                problem,
            })?
        };
        let namespaces = text("namespaces")?
            .split(',')
            .map(str::trim)
            .filter(|ns| !ns.is_empty())
            .map(String::from)
            .collect();
        let project = Some(text("project")?).filter(|p| !p.is_empty()).map(String::from);
        Ok(ClusterSecret {
            name: text("name")?.to_string(),
            server: server.to_string(),
            namespaces,
            cluster_resources: text("clusterResources")? == "true",
            project,
            labels: secret.metadata.labels.clone().unwrap_or_default(),
            annotations: secret.metadata.annotations.clone().unwrap_or_default(),
            config,
            secret_name: secret.metadata.name.clone().unwrap_or_default(),
        })
    }

    /// What the ApplicationSet clusters generator reads of a cluster Secret: `name`, `server`, `project`,
    /// labels and annotations, straight from the data as Argo CD does, so a Secret whose `config` is
    /// unusable still yields its parameters (the Applications generated for it then report the connection
    /// error). `None` when a key is not text or `server` is missing.
    pub fn for_generator(secret: &Secret) -> Option<berth_appset::generators::clusters::Cluster> {
        let data = SecretData::of(secret);
        let server = data.text("server").ok()?.trim_end_matches('/');
        if server.is_empty() {
            return None;
        }
        Some(berth_appset::generators::clusters::Cluster {
            // A Secret without a name is still a cluster (Argo CD gives it an empty name).
            name: data.text("name").unwrap_or_default().to_string(),
            server: server.to_string(),
            project: data.text("project").ok().filter(|p| !p.is_empty()).map(String::from),
            labels: secret.metadata.labels.clone().unwrap_or_default(),
            annotations: secret.metadata.annotations.clone().unwrap_or_default(),
        })
    }

    /// Whether this Secret stands for the cluster berth runs in. Argo CD reaches that one with its own
    /// service account, not with this Secret's TLS or plugin settings: see [`Self::in_cluster_config`].
    pub fn is_in_cluster(&self) -> bool {
        self.server == IN_CLUSTER_SERVER
    }

    /// The process's own in-cluster `base` config with this Secret's static credentials put over it, as
    /// Argo CD does for the in-cluster address: any of `username`, `password`, `bearerToken` set replaces
    /// the service account's token; none set leaves `base` as it is.
    pub fn in_cluster_config(&self, base: kube::Config) -> Result<kube::Config, ClusterSecretError> {
        let c = &self.config;
        if c.username.is_none() && c.password.is_none() && c.bearer_token.is_none() {
            return Ok(base);
        }
        let mut config = base;
        config.auth_info = self.static_auth()?;
        Ok(config)
    }

    /// A [`kube::Config`] for this cluster: its server, CA (`root_cert`), `insecure`, `serverName`,
    /// `proxyUrl`, `disableCompression`, and one way to authenticate, chosen as Argo CD chooses:
    /// `awsAuthConfig` (unsupported: an error), else `execProviderConfig` (an error unless
    /// `exec_allowed`; the plugin never prompts), else bearer token, basic auth and the client certificate.
    ///
    /// `HTTPS_PROXY` is not consulted: only the Secret's `proxyUrl` is. For the in-cluster address see
    /// [`Self::is_in_cluster`].
    pub fn kube_config(&self, exec_allowed: bool) -> Result<kube::Config, ClusterSecretError> {
        let tls = &self.config.tls_client_config;
        let label = || self.label();
        let config_error = |field: &str, problem: String| ClusterSecretError::Config {
            secret: label(),
            field: field.into(),
            problem,
        };
        // client-go refuses this pair, so Argo CD cannot connect with it either.
        if tls.insecure && tls.ca_data.is_some() {
            return Err(config_error(
                "tlsClientConfig",
                "`insecure` and `caData` are both set; a CA cannot be combined with skipping verification"
                    .into(),
            ));
        }
        let mut auth_info = if self.config.aws_auth_config.is_some() {
            return Err(ClusterSecretError::AwsAuthUnsupported { secret: label() });
        } else if let Some(exec) = &self.config.exec_provider_config {
            if !exec_allowed {
                return Err(ClusterSecretError::ExecNotAllowed {
                    secret: label(),
                    command: exec.command.clone(),
                });
            }
            AuthInfo { exec: Some(exec.kube_exec_config()), ..AuthInfo::default() }
        } else {
            self.static_auth()?
        };
        match (&tls.cert_data, &tls.key_data) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                for (field, pem) in [("tlsClientConfig.certData", cert), ("tlsClientConfig.keyData", key)] {
                    if !looks_like_pem(pem) {
                        return Err(config_error(field, "is not PEM data".into()));
                    }
                }
                // kube reads client certificate and key as base64 text, as a kubeconfig holds them.
                let value = serde_json::json!({
                    "client-certificate-data": base64(cert),
                    "client-key-data": base64(key),
                });
                let identity: AuthInfo = serde_json::from_value(value).map_err(|_| {
                    config_error("tlsClientConfig", "cannot hold the client certificate".into())
                })?;
                auth_info.client_certificate_data = identity.client_certificate_data;
                auth_info.client_key_data = identity.client_key_data;
            }
            (Some(_), None) => {
                return Err(config_error("tlsClientConfig.keyData", "certData needs it".into()));
            }
            (None, Some(_)) => {
                return Err(config_error("tlsClientConfig.certData", "keyData needs it".into()));
            }
        }

        // kube builds a Config from a kubeconfig of one cluster, user and context: it parses the server URL
        // and turns the CA's PEM into the DER certificates rustls trusts.
        const ENTRY: &str = "cluster";
        let cluster = Cluster {
            server: Some(self.server.clone()),
            insecure_skip_tls_verify: Some(tls.insecure),
            certificate_authority_data: tls.ca_data.as_deref().map(base64),
            tls_server_name: tls.server_name.clone(),
            disable_compression: Some(self.config.disable_compression),
            ..Cluster::default()
        };
        let kubeconfig = Kubeconfig {
            clusters: vec![NamedCluster { name: ENTRY.into(), cluster: Some(cluster), ..Default::default() }],
            auth_infos: vec![NamedAuthInfo {
                name: ENTRY.into(),
                auth_info: Some(auth_info),
                ..Default::default()
            }],
            contexts: vec![NamedContext {
                name: ENTRY.into(),
                context: Some(Context {
                    cluster: ENTRY.into(),
                    user: Some(ENTRY.into()),
                    ..Context::default()
                }),
                ..Default::default()
            }],
            current_context: Some(ENTRY.into()),
            ..Kubeconfig::default()
        };
        let mut config = kube::Config::try_from(kubeconfig).map_err(|e| match e {
            KubeconfigError::ParseClusterUrl(e) => {
                ClusterSecretError::Server { secret: label(), problem: e.to_string() }
            }
            KubeconfigError::LoadCertificateAuthority(_) | KubeconfigError::ParseCertificates(_) => {
                config_error("tlsClientConfig.caData", "is not PEM certificates".into())
            }
            // Nothing else can fail for a kubeconfig built here; say which step without kube's details.
            _ => config_error("config", "kube cannot build a client configuration from it".into()),
        })?;
        if config.root_cert.as_ref().is_some_and(Vec::is_empty) {
            return Err(config_error("tlsClientConfig.caData", "holds no PEM certificate".into()));
        }
        config.proxy_url = match &self.config.proxy_url {
            None => None,
            Some(url) => Some(url.parse().map_err(|_| config_error("proxyUrl", "is not a URL".into()))?),
        };
        Ok(config)
    }

    /// Bearer token or basic auth, whichever the Secret has.
    fn static_auth(&self) -> Result<AuthInfo, ClusterSecretError> {
        let c = &self.config;
        if c.bearer_token.is_some() && (c.username.is_some() || c.password.is_some()) {
            // client-go refuses both at once.
            return Err(ClusterSecretError::Config {
                secret: self.label(),
                field: "bearerToken".into(),
                problem: "username/password or bearerToken may be set, not both".into(),
            });
        }
        // Secrets go through serde because kube keeps them as `SecretString`.
        let value = match (&c.bearer_token, &c.username) {
            (Some(token), _) => serde_json::json!({ "token": token }),
            // client-go sends basic auth for a username alone, with an empty password.
            (None, Some(username)) => serde_json::json!({
                "username": username,
                "password": c.password.clone().unwrap_or_default(),
            }),
            (None, None) => serde_json::json!({}),
        };
        serde_json::from_value(value).map_err(|_| ClusterSecretError::Config {
            secret: self.label(),
            field: "config".into(),
            problem: "cannot hold the credentials".into(),
        })
    }

    fn label(&self) -> String {
        if self.secret_name.is_empty() { "<unnamed>".into() } else { self.secret_name.clone() }
    }
}

impl ExecProviderConfig {
    fn kube_exec_config(&self) -> ExecConfig {
        let env = self
            .env
            .iter()
            .map(|(name, value)| {
                HashMap::from([("name".into(), name.clone()), ("value".into(), value.clone())])
            })
            .collect::<Vec<_>>();
        ExecConfig {
            api_version: self.api_version.clone(),
            command: Some(self.command.clone()),
            args: Some(self.args.clone()),
            env: Some(env),
            install_hint: self.install_hint.clone(),
            // A controller has no terminal to prompt on.
            interactive_mode: Some(ExecInteractiveMode::Never),
            ..ExecConfig::default()
        }
    }
}

/// A field of the `config` JSON that is not what Argo CD expects: its path and what is wrong, never its value.
type FieldError = (String, String);

impl ClusterConfig {
    fn parse(text: &str) -> Result<Self, FieldError> {
        // serde_json's syntax messages carry only a position, never input.
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ("config".to_string(), format!("is not JSON (line {} column {})", e.line(), e.column()))
        })?;
        let root = JsonObject::of(&value, "")?.unwrap_or_default();
        let tls = root.object("tlsClientConfig")?.unwrap_or_default();
        let exec = root.object("execProviderConfig")?;
        let aws = root.object("awsAuthConfig")?;
        Ok(ClusterConfig {
            bearer_token: root.string("bearerToken")?,
            username: root.string("username")?,
            password: root.string("password")?,
            tls_client_config: TlsClientConfig {
                insecure: tls.bool("insecure")?,
                server_name: tls.string("serverName")?,
                ca_data: tls.base64("caData")?,
                cert_data: tls.base64("certData")?,
                key_data: tls.base64("keyData")?,
            },
            exec_provider_config: exec
                .map(|exec| {
                    Ok::<_, FieldError>(ExecProviderConfig {
                        command: exec.string("command")?.unwrap_or_default(),
                        args: exec.strings("args")?,
                        env: exec.string_map("env")?,
                        api_version: exec.string("apiVersion")?,
                        install_hint: exec.string("installHint")?,
                    })
                })
                .transpose()?,
            aws_auth_config: aws
                .map(|aws| {
                    Ok::<_, FieldError>(AwsAuthConfig {
                        cluster_name: aws.string("clusterName")?.unwrap_or_default(),
                        role_arn: aws.string("roleARN")?,
                        profile: aws.string("profile")?,
                    })
                })
                .transpose()?,
            proxy_url: root.string("proxyUrl")?,
            disable_compression: root.bool("disableCompression")?,
        })
    }
}

/// A JSON object read the way Go's `encoding/json` fills a struct: keys match exactly or else ignoring
/// ASCII case, `null` is absent, unknown keys are ignored.
#[derive(Default)]
struct JsonObject<'a> {
    map: Option<&'a Map<String, Value>>,
    path: String,
}

impl<'a> JsonObject<'a> {
    fn of(value: &'a Value, path: &str) -> Result<Option<Self>, FieldError> {
        match value {
            Value::Null => Ok(None),
            Value::Object(map) => Ok(Some(JsonObject { map: Some(map), path: path.into() })),
            _ => Err((
                if path.is_empty() { "config".into() } else { path.into() },
                "expected an object".into(),
            )),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.path.is_empty() { key.into() } else { format!("{}.{key}", self.path) }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        let map = self.map?;
        map.get(key)
            .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
            .filter(|v| !v.is_null())
    }

    fn expected(&self, key: &str, what: &str) -> FieldError {
        (self.path(key), format!("expected {what}"))
    }

    fn object(&self, key: &str) -> Result<Option<JsonObject<'a>>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => JsonObject::of(value, &self.path(key)),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
            Some(_) => Err(self.expected(key, "a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, FieldError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.expected(key, "true or false")),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, FieldError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().map(String::from).ok_or_else(|| self.expected(key, "a list of strings"))
                })
                .collect(),
            Some(_) => Err(self.expected(key, "a list of strings")),
        }
    }

    fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>, FieldError> {
        match self.get(key) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|v| (k.clone(), v.to_string()))
                        .ok_or_else(|| self.expected(key, "strings"))
                })
                .collect(),
            Some(_) => Err(self.expected(key, "an object of strings")),
        }
    }

    /// Go's `[]byte`: standard base64 (line breaks ignored); empty reads as absent.
    fn base64(&self, key: &str) -> Result<Option<Vec<u8>>, FieldError> {
        let Some(text) = self.string(key)? else { return Ok(None) };
        let cleaned: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        // The decoder's message quotes the offending byte: replaced, it may be part of a key.
        let bytes = serde_json::from_value::<ByteString>(Value::String(cleaned))
            .map_err(|_| (self.path(key), "is not valid base64".to_string()))?;
        Ok(Some(bytes.0).filter(|b| !b.is_empty()))
    }
}

/// Standard base64, as a kubeconfig's `*-data` fields hold it.
fn base64(bytes: &[u8]) -> String {
    match serde_json::to_value(ByteString(bytes.to_vec())) {
        Ok(Value::String(s)) => s,
        _ => unreachable!("ByteString serializes to a string"),
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// A Secret's `data` with its `stringData` merged over it, and how errors name the Secret.
struct SecretData<'a> {
    values: BTreeMap<&'a str, &'a [u8]>,
    label: String,
}

impl<'a> SecretData<'a> {
    fn of(secret: &'a Secret) -> Self {
        let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for (key, value) in secret.data.iter().flatten() {
            values.insert(key, &value.0);
        }
        for (key, value) in secret.string_data.iter().flatten() {
            values.insert(key, value.as_bytes());
        }
        let label = match (&secret.metadata.namespace, &secret.metadata.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name.clone(),
            _ => "<unnamed>".into(),
        };
        SecretData { values, label }
    }

    /// The key's value as text; a missing key reads as empty, as Go's `string(nil)` does.
    fn text(&self, key: &str) -> Result<&'a str, ClusterSecretError> {
        match self.values.get(key) {
            None => Ok(""),
            Some(bytes) => std::str::from_utf8(bytes)
                .map_err(|_| ClusterSecretError::NotText { secret: self.label.clone(), key: key.into() }),
        }
    }
}

/// A cluster's `config` without its credentials: no password, bearer token, client key, nor the exec
/// provider's arguments and environment (they may hold secrets too), as Argo CD answers.
pub fn redacted_config(text: &str) -> Value {
    let Ok(Value::Object(mut config)) = serde_json::from_str::<Value>(text) else {
        return Value::Object(Map::new());
    };
    config.remove("password");
    config.remove("bearerToken");
    if let Some(Value::Object(tls)) = config.get_mut("tlsClientConfig") {
        tls.remove("keyData");
    }
    if let Some(Value::Object(exec)) = config.get_mut("execProviderConfig") {
        exec.remove("args");
        exec.insert("env".into(), Value::Object(Map::new()));
    }
    Value::Object(config)
}

const REDACTED: &str = "<redacted>";

fn redacted<T>(value: &Option<T>) -> Option<&'static str> {
    value.as_ref().map(|_| REDACTED)
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSecret")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("namespaces", &self.namespaces)
            .field("cluster_resources", &self.cluster_resources)
            .field("project", &self.project)
            .field("labels", &self.labels)
            .field("annotations", &self.annotations)
            .field("config", &self.config)
            .field("secret_name", &self.secret_name)
            .finish()
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("bearer_token", &redacted(&self.bearer_token))
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("tls_client_config", &self.tls_client_config)
            .field("exec_provider_config", &self.exec_provider_config)
            .field("aws_auth_config", &self.aws_auth_config)
            // A proxy URL may carry `user:password@`.
            .field(
                "proxy_url",
                &self.proxy_url.as_ref().map(|url| if url.contains('@') { REDACTED } else { url }),
            )
            .field("disable_compression", &self.disable_compression)
            .finish()
    }
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("insecure", &self.insecure)
            .field("server_name", &self.server_name)
            .field("ca_data", &self.ca_data.as_ref().map(|b| format!("{} bytes", b.len())))
            .field("cert_data", &redacted(&self.cert_data))
            .field("key_data", &redacted(&self.key_data))
            .finish()
    }
}

impl fmt::Debug for ExecProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Arguments and environment may carry credentials (`--token=…`); only the variable names show.
        f.debug_struct("ExecProviderConfig")
            .field("command", &self.command)
            .field("args", &format_args!("<{} redacted>", self.args.len()))
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("api_version", &self.api_version)
            .field("install_hint", &self.install_hint)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "tok-9f8e7d6c5b4a";
    const PASSWORD: &str = "pw-1a2b3c4d5e6f";
    const KEY_BODY: &str = "S3CR3TK3YB0DY";
    /// A PEM certificate whose body is base64 of `hello` (kube checks PEM framing, not X.509).
    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";

    fn key_pem() -> String {
        format!("-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n")
    }

    /// A cluster Secret as the API server returns it: everything in `data`.
    fn secret_with_data(pairs: &[(&str, &[u8])]) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some("prod".into());
        secret.metadata.namespace = Some("argocd".into());
        secret.metadata.labels =
            Some(BTreeMap::from([(berth_api::secret_type::LABEL.into(), "cluster".into())]));
        secret.data = Some(pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect());
        secret
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        let pairs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        secret_with_data(&pairs)
    }

    fn with_config(config: serde_json::Value) -> ClusterSecret {
        ClusterSecret::from_secret(&secret(&[
            ("server", "https://prod.example.com"),
            ("config", &config.to_string()),
        ]))
        .expect("valid cluster Secret")
    }

    fn config_error(config: &str) -> String {
        let err = ClusterSecret::from_secret(&secret(&[("server", "https://x"), ("config", config)]))
            .expect_err("config must be refused");
        err.to_string()
    }

    fn auth_json(config: &kube::Config) -> serde_json::Value {
        serde_json::to_value(&config.auth_info).unwrap()
    }

    #[test]
    fn reads_every_key_and_keeps_labels_and_annotations_as_they_are() {
        let mut s = secret(&[
            ("name", "prod"),
            ("server", "https://prod.example.com:6443/"),
            ("namespaces", "team-a, ,team-b,,  team-c "),
            ("clusterResources", "true"),
            ("project", "payments"),
        ]);
        s.metadata.annotations = Some(BTreeMap::from([("owner".into(), "sre".into())]));
        let cluster = ClusterSecret::from_secret(&s).unwrap();
        assert_eq!(cluster.name, "prod");
        assert_eq!(cluster.server, "https://prod.example.com:6443");
        assert_eq!(cluster.namespaces, ["team-a", "team-b", "team-c"]);
        assert!(cluster.cluster_resources);
        assert_eq!(cluster.project.as_deref(), Some("payments"));
        assert_eq!(cluster.labels[berth_api::secret_type::LABEL], "cluster");
        assert_eq!(cluster.annotations["owner"], "sre");
        assert_eq!(cluster.secret_name, "prod");
        assert_eq!(cluster.config, ClusterConfig::default());
    }

    #[test]
    fn every_trailing_slash_of_the_server_is_trimmed() {
        let cluster = ClusterSecret::from_secret(&secret(&[("server", "https://a.example.com//")])).unwrap();
        assert_eq!(cluster.server, "https://a.example.com");
    }

    #[test]
    fn string_data_wins_over_data() {
        let mut s = secret(&[("server", "https://old"), ("name", "old")]);
        s.string_data = Some(BTreeMap::from([("server".into(), "https://new/".into())]));
        let cluster = ClusterSecret::from_secret(&s).unwrap();
        assert_eq!(cluster.server, "https://new");
        assert_eq!(cluster.name, "old");
    }

    #[test]
    fn cluster_resources_is_false_unless_exactly_true() {
        let read = |value: Option<&str>| {
            let mut pairs = vec![("server", "https://x"), ("namespaces", "a,b")];
            pairs.extend(value.map(|v| ("clusterResources", v)));
            ClusterSecret::from_secret(&secret(&pairs)).unwrap().cluster_resources
        };
        assert!(!read(None));
        assert!(!read(Some("True")));
        assert!(!read(Some("1")));
        assert!(!read(Some("false")));
        assert!(read(Some("true")));
    }

    #[test]
    fn missing_name_and_project_are_not_defaulted() {
        let cluster =
            ClusterSecret::from_secret(&secret(&[("server", "https://x"), ("project", "")])).unwrap();
        assert_eq!(cluster.name, "");
        assert_eq!(cluster.project, None);
        assert!(cluster.namespaces.is_empty());
    }

    #[test]
    fn missing_or_empty_server_is_an_error_naming_the_secret_and_key() {
        for pairs in [&[("name", "prod")][..], &[("server", "/")][..]] {
            let message = ClusterSecret::from_secret(&secret(pairs)).unwrap_err().to_string();
            assert!(message.contains("argocd/prod"), "{message}");
            assert!(message.contains("`server`"), "{message}");
        }
    }

    #[test]
    fn a_key_that_is_not_text_is_an_error_naming_it() {
        let s = secret_with_data(&[("server", b"https://x"), ("namespaces", &[0xff, 0xfe])]);
        let message = ClusterSecret::from_secret(&s).unwrap_err().to_string();
        assert!(message.contains("`namespaces`") && message.contains("argocd/prod"), "{message}");
    }

    #[test]
    fn malformed_config_json_names_the_secret_and_hides_its_text() {
        let message = config_error(&format!(r#"{{"bearerToken": "{TOKEN}", "password": "{PASSWORD}""#));
        assert!(
            message.contains("argocd/prod") && message.contains("config.config: is not JSON"),
            "{message}"
        );
        assert!(!message.contains(TOKEN) && !message.contains(PASSWORD), "{message}");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_without_its_value() {
        let message = config_error(&json!({"tlsClientConfig": {"insecure": PASSWORD}}).to_string());
        assert!(message.contains("config.tlsClientConfig.insecure: expected true or false"), "{message}");
        assert!(!message.contains(PASSWORD), "{message}");
        let message = config_error(&json!({"bearerToken": [TOKEN]}).to_string());
        assert!(message.contains("config.bearerToken: expected a string"), "{message}");
        assert!(!message.contains(TOKEN), "{message}");
        let message = config_error(&json!({"execProviderConfig": {"args": [1]}}).to_string());
        assert!(message.contains("config.execProviderConfig.args"), "{message}");
        assert!(config_error("[]").contains("config.config: expected an object"));
    }

    #[test]
    fn bad_base64_in_tls_data_names_the_field_and_hides_the_data() {
        for field in ["caData", "certData", "keyData"] {
            let message =
                config_error(&json!({"tlsClientConfig": {field: format!("%%{KEY_BODY}%%")}}).to_string());
            assert!(
                message.contains(&format!("config.tlsClientConfig.{field}: is not valid base64")),
                "{message}"
            );
            assert!(message.contains("argocd/prod"), "{message}");
            assert!(!message.contains(KEY_BODY), "{message}");
        }
    }

    #[test]
    fn empty_config_reads_as_no_settings() {
        let cluster =
            ClusterSecret::from_secret(&secret(&[("server", "https://x"), ("config", "")])).unwrap();
        assert_eq!(cluster.config, ClusterConfig::default());
        assert_eq!(with_config(json!({})).config, ClusterConfig::default());
    }

    #[test]
    fn config_reads_every_field() {
        let cluster = with_config(json!({
            "bearerToken": TOKEN, "username": "admin", "password": PASSWORD,
            "tlsClientConfig": {"insecure": true, "serverName": "api.internal",
                                "caData": base64(CERT_PEM.as_bytes()), "certData": base64(CERT_PEM.as_bytes()),
                                "keyData": base64(key_pem().as_bytes())},
            "execProviderConfig": {"command": "aws", "args": ["eks", "get-token"], "env": {"AWS_REGION": "eu-west-1"},
                                   "apiVersion": "client.authentication.k8s.io/v1beta1", "installHint": "install aws"},
            "awsAuthConfig": {"clusterName": "prod", "roleARN": "arn:aws:iam::1:role/r", "profile": "p"},
            "proxyUrl": "http://proxy:3128", "disableCompression": true,
            "somethingNew": {"ignored": 1},
        }));
        let c = &cluster.config;
        assert_eq!(c.bearer_token.as_deref(), Some(TOKEN));
        assert_eq!(c.username.as_deref(), Some("admin"));
        assert_eq!(c.password.as_deref(), Some(PASSWORD));
        let tls = &c.tls_client_config;
        assert!(tls.insecure);
        assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
        assert_eq!(tls.ca_data.as_deref(), Some(CERT_PEM.as_bytes()));
        assert_eq!(tls.cert_data.as_deref(), Some(CERT_PEM.as_bytes()));
        assert_eq!(tls.key_data.as_deref(), Some(key_pem().as_bytes()));
        let exec = c.exec_provider_config.as_ref().unwrap();
        assert_eq!(exec.command, "aws");
        assert_eq!(exec.args, ["eks", "get-token"]);
        assert_eq!(exec.env["AWS_REGION"], "eu-west-1");
        assert_eq!(exec.api_version.as_deref(), Some("client.authentication.k8s.io/v1beta1"));
        assert_eq!(exec.install_hint.as_deref(), Some("install aws"));
        let aws = c.aws_auth_config.as_ref().unwrap();
        assert_eq!(aws.cluster_name, "prod");
        assert_eq!(aws.role_arn.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert_eq!(aws.profile.as_deref(), Some("p"));
        assert_eq!(c.proxy_url.as_deref(), Some("http://proxy:3128"));
        assert!(c.disable_compression);
    }

    #[test]
    fn config_keys_match_ignoring_case_and_null_reads_as_absent_like_go() {
        let cluster = with_config(json!({
            "BearerToken": TOKEN, "TLSClientConfig": {"Insecure": true},
            "password": null, "execProviderConfig": null,
        }));
        assert_eq!(cluster.config.bearer_token.as_deref(), Some(TOKEN));
        assert!(cluster.config.tls_client_config.insecure);
        assert_eq!(cluster.config.password, None);
        assert_eq!(cluster.config.exec_provider_config, None);
    }

    #[test]
    fn base64_with_line_breaks_decodes_and_empty_reads_as_absent() {
        let encoded = base64(CERT_PEM.as_bytes());
        let wrapped = format!("{}\n{}\r\n", &encoded[..10], &encoded[10..]);
        let cluster = with_config(json!({"tlsClientConfig": {"caData": wrapped, "certData": ""}}));
        assert_eq!(cluster.config.tls_client_config.ca_data.as_deref(), Some(CERT_PEM.as_bytes()));
        assert_eq!(cluster.config.tls_client_config.cert_data, None);
    }

    #[test]
    fn debug_redacts_every_credential() {
        let cluster = with_config(json!({
            "bearerToken": TOKEN, "username": "admin", "password": PASSWORD,
            "tlsClientConfig": {"certData": base64(CERT_PEM.as_bytes()), "keyData": base64(key_pem().as_bytes())},
            "execProviderConfig": {"command": "get-token", "args": [format!("--token={TOKEN}")],
                                   "env": {"SECRET": PASSWORD}},
            "proxyUrl": format!("http://user:{PASSWORD}@proxy:3128"),
        }));
        let debug = format!("{cluster:?} {:?}", cluster.config.exec_provider_config);
        for secret in [TOKEN, PASSWORD, KEY_BODY, "aGVsbG8", "BEGIN"] {
            assert!(!debug.contains(secret), "{secret} shows in {debug}");
        }
        assert!(
            debug.contains("admin") && debug.contains("get-token") && debug.contains("SECRET"),
            "{debug}"
        );
        assert!(debug.contains(REDACTED), "{debug}");
    }

    #[test]
    fn kube_config_carries_ca_client_certificate_and_tls_settings() {
        let cluster = with_config(json!({
            "tlsClientConfig": {"serverName": "api.internal", "caData": base64(CERT_PEM.as_bytes()),
                                "certData": base64(CERT_PEM.as_bytes()), "keyData": base64(key_pem().as_bytes())},
            "proxyUrl": "http://proxy.internal:3128", "disableCompression": true,
        }));
        let config = cluster.kube_config(false).unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://prod.example.com/");
        assert_eq!(config.root_cert, Some(vec![b"hello".to_vec()]));
        assert!(!config.accept_invalid_certs);
        assert_eq!(config.tls_server_name.as_deref(), Some("api.internal"));
        assert_eq!(
            config.proxy_url.as_ref().map(|u| u.to_string()).as_deref(),
            Some("http://proxy.internal:3128/")
        );
        assert!(config.disable_compression);
        let auth = auth_json(&config);
        assert_eq!(auth["client-certificate-data"], base64(CERT_PEM.as_bytes()));
        assert_eq!(auth["client-key-data"], base64(key_pem().as_bytes()));
        assert!(auth.get("token").is_none() && auth.get("exec").is_none(), "{auth}");
    }

    #[test]
    fn kube_config_without_proxy_url_has_none_whatever_the_environment() {
        let config = with_config(json!({"bearerToken": TOKEN})).kube_config(false).unwrap();
        assert_eq!(config.proxy_url, None);
        assert_eq!(config.root_cert, None);
    }

    #[test]
    fn kube_config_authenticates_with_the_bearer_token() {
        let config = with_config(json!({"bearerToken": TOKEN})).kube_config(false).unwrap();
        assert_eq!(auth_json(&config)["token"], TOKEN);
    }

    #[test]
    fn kube_config_authenticates_with_basic_auth_even_without_a_password() {
        let config =
            with_config(json!({"username": "admin", "password": PASSWORD})).kube_config(false).unwrap();
        assert_eq!(auth_json(&config)["username"], "admin");
        assert_eq!(auth_json(&config)["password"], PASSWORD);
        let config = with_config(json!({"username": "admin"})).kube_config(false).unwrap();
        assert_eq!(auth_json(&config)["password"], "");
    }

    #[test]
    fn bearer_token_and_basic_auth_together_are_refused_without_showing_them() {
        let err = with_config(json!({"bearerToken": TOKEN, "username": "admin", "password": PASSWORD}))
            .kube_config(false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both") && err.contains("cluster Secret prod"), "{err}");
        assert!(!err.contains(TOKEN) && !err.contains(PASSWORD), "{err}");
    }

    #[test]
    fn insecure_accepts_invalid_certificates_but_not_together_with_a_ca() {
        let config = with_config(json!({"tlsClientConfig": {"insecure": true}})).kube_config(false).unwrap();
        assert!(config.accept_invalid_certs);
        let err = with_config(
            json!({"tlsClientConfig": {"insecure": true, "caData": base64(CERT_PEM.as_bytes())}}),
        )
        .kube_config(false)
        .unwrap_err()
        .to_string();
        assert!(err.contains("config.tlsClientConfig:") && err.contains("insecure"), "{err}");
    }

    #[test]
    fn exec_provider_is_refused_unless_allowed() {
        let cluster = with_config(json!({"execProviderConfig": {"command": "aws", "args": [TOKEN]}}));
        let err = cluster.kube_config(false).unwrap_err().to_string();
        assert!(err.contains("execProviderConfig is not allowed: ") && err.contains("`aws`"), "{err}");
        assert!(!err.contains(TOKEN), "{err}");
    }

    #[test]
    fn allowed_exec_provider_replaces_static_credentials_and_never_prompts() {
        let cluster = with_config(json!({
            "bearerToken": TOKEN,
            "execProviderConfig": {"command": "aws", "args": ["eks", "get-token"], "env": {"AWS_REGION": "eu-west-1"},
                                   "apiVersion": "client.authentication.k8s.io/v1beta1", "installHint": "install aws"},
        }));
        let config = cluster.kube_config(true).unwrap();
        assert!(config.auth_info.token.is_none());
        let exec = config.auth_info.exec.as_ref().unwrap();
        assert_eq!(exec.command.as_deref(), Some("aws"));
        assert_eq!(exec.args.as_deref(), Some(&["eks".to_string(), "get-token".to_string()][..]));
        let env = exec.env.as_ref().unwrap();
        assert_eq!(env.len(), 1);
        assert_eq!((env[0]["name"].as_str(), env[0]["value"].as_str()), ("AWS_REGION", "eu-west-1"));
        assert_eq!(exec.api_version.as_deref(), Some("client.authentication.k8s.io/v1beta1"));
        assert_eq!(exec.install_hint.as_deref(), Some("install aws"));
        assert_eq!(exec.interactive_mode, Some(ExecInteractiveMode::Never));
    }

    #[test]
    fn aws_auth_is_unsupported_even_where_exec_is_allowed() {
        let cluster = with_config(
            json!({"awsAuthConfig": {"clusterName": "prod"}, "execProviderConfig": {"command": "x"}}),
        );
        for exec_allowed in [false, true] {
            let err = cluster.kube_config(exec_allowed).unwrap_err();
            assert!(matches!(err, ClusterSecretError::AwsAuthUnsupported { .. }), "{err}");
            assert!(err.to_string().contains("awsAuthConfig is not supported"));
        }
    }

    #[test]
    fn client_certificate_needs_its_key_and_both_must_be_pem() {
        let only_cert = with_config(json!({"tlsClientConfig": {"certData": base64(CERT_PEM.as_bytes())}}));
        assert!(only_cert.kube_config(false).unwrap_err().to_string().contains("tlsClientConfig.keyData"));
        let only_key = with_config(json!({"tlsClientConfig": {"keyData": base64(key_pem().as_bytes())}}));
        let err = only_key.kube_config(false).unwrap_err().to_string();
        assert!(err.contains("tlsClientConfig.certData") && !err.contains(KEY_BODY), "{err}");
        let raw_key = with_config(json!({"tlsClientConfig": {
            "certData": base64(CERT_PEM.as_bytes()), "keyData": base64(KEY_BODY.as_bytes())}}));
        let err = raw_key.kube_config(false).unwrap_err().to_string();
        assert!(err.contains("tlsClientConfig.keyData: is not PEM") && !err.contains(KEY_BODY), "{err}");
    }

    #[test]
    fn ca_data_without_a_pem_certificate_is_refused() {
        let cluster = with_config(json!({"tlsClientConfig": {"caData": base64(b"no certificate here")}}));
        let err = cluster.kube_config(false).unwrap_err().to_string();
        assert!(err.contains("config.tlsClientConfig.caData"), "{err}");
    }

    #[test]
    fn unusable_server_or_proxy_urls_are_named() {
        let bad_server = ClusterSecret::from_secret(&secret(&[("server", "https://bad host")])).unwrap();
        let err = bad_server.kube_config(false).unwrap_err();
        assert!(matches!(err, ClusterSecretError::Server { .. }), "{err}");
        let err =
            with_config(json!({"proxyUrl": "http://bad proxy"})).kube_config(false).unwrap_err().to_string();
        assert!(err.contains("config.proxyUrl"), "{err}");
    }

    #[test]
    fn in_cluster_secret_puts_static_credentials_over_the_service_account() {
        let base = || {
            let mut config = kube::Config::new("https://10.0.0.1:443".parse().unwrap());
            config.auth_info.token_file = Some("/var/run/secrets/kubernetes.io/serviceaccount/token".into());
            config
        };
        let plain =
            ClusterSecret::from_secret(&secret(&[("server", "https://kubernetes.default.svc/")])).unwrap();
        assert!(plain.is_in_cluster());
        let config = plain.in_cluster_config(base()).unwrap();
        assert!(config.auth_info.token_file.is_some());

        let mut with_token = plain.clone();
        with_token.config.bearer_token = Some(TOKEN.into());
        let config = with_token.in_cluster_config(base()).unwrap();
        assert_eq!(config.auth_info.token_file, None);
        assert_eq!(auth_json(&config)["token"], TOKEN);
        assert_eq!(config.cluster_url.to_string(), "https://10.0.0.1:443/");
        assert!(!with_config(json!({})).is_in_cluster());
    }

    #[test]
    fn only_false_disables_the_in_cluster_destination() {
        let cm = |value: &str| BTreeMap::from([(IN_CLUSTER_ENABLED_KEY.to_string(), value.to_string())]);
        assert!(in_cluster_disabled(&cm("false")));
        assert!(!in_cluster_disabled(&cm("False")));
        assert!(!in_cluster_disabled(&cm("true")));
        assert!(!in_cluster_disabled(&BTreeMap::new()));
    }

    #[test]
    fn cluster_configs_lose_every_credential() {
        let config = serde_json::json!({"username": "u", "password": "p", "bearerToken": "tok",
            "tlsClientConfig": {"insecure": false, "caData": "CA", "certData": "CERT", "keyData": "KEY"},
            "execProviderConfig": {"command": "aws", "args": ["--secret", "s"], "env": {"K": "V"}}});
        let redacted = redacted_config(&config.to_string());
        assert_eq!(
            redacted,
            serde_json::json!({"username": "u", "tlsClientConfig": {"insecure": false, "caData": "CA", "certData": "CERT"},
                "execProviderConfig": {"command": "aws", "env": {}}})
        );
        assert_eq!(redacted_config("not json"), serde_json::json!({}));
    }
}
