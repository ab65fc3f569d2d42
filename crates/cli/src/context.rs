//! Where `berth login` keeps its sessions: `$XDG_CONFIG_HOME/berth/config` (else `~/.config/berth/config`),
//! YAML, readable by its owner only. A context is one server with its token and transport choices.

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The whole config file.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<ServerContext>,
}

/// One server as `berth login` left it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "kebab-case")]
pub struct ServerContext {
    pub name: String,
    /// `HOST:PORT`, as given to `berth login`.
    pub server: String,
    /// Cleared by `berth logout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The refresh token of an SSO login (`berth login --sso`), which renews the ID token in `token`;
    /// `refresh-token`, as Argo CD's config keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub plaintext: bool,
    #[serde(default)]
    pub insecure: bool,
}

/// `$XDG_CONFIG_HOME/berth/config`, else `$HOME/.config/berth/config` (the values are passed in so tests
/// need not touch the process environment).
pub fn config_path_from(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Result<PathBuf> {
    if let Some(xdg) = xdg_config_home.filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("berth").join("config"));
    }
    match home.filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("berth").join("config")),
        None => {
            bail!("cannot find the config file: neither XDG_CONFIG_HOME nor HOME is set (or pass --config)")
        }
    }
}

/// The config file this process uses: `explicit` (`--config`) when given.
pub fn config_path(explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(path) => Ok(path.to_path_buf()),
        None => config_path_from(std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")),
    }
}

impl Config {
    /// The file at `path`; an absent or empty file is an empty config.
    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the file with mode 0600 (it holds tokens), replacing the old one in one rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let text = serde_saphyr::to_string(self).context("serialising the config")?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let staging = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let mut file = private_file(&staging)?;
        file.write_all(text.as_bytes()).with_context(|| format!("writing {}", staging.display()))?;
        file.sync_all().with_context(|| format!("writing {}", staging.display()))?;
        std::fs::rename(&staging, path).with_context(|| format!("replacing {}", path.display()))
    }

    pub fn current(&self) -> Option<&ServerContext> {
        let name = self.current_context.as_deref()?;
        self.context(name)
    }

    pub fn context(&self, name: &str) -> Option<&ServerContext> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The context for `server`: the current one when it points there, else the first that does.
    pub fn for_server(&self, server: &str) -> Option<&ServerContext> {
        self.current()
            .filter(|c| c.server == server)
            .or_else(|| self.contexts.iter().find(|c| c.server == server))
    }

    /// Adds or replaces the context of the same name and makes it current.
    pub fn upsert(&mut self, context: ServerContext) {
        self.current_context = Some(context.name.clone());
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(existing) => *existing = context,
            None => self.contexts.push(context),
        }
    }

    /// Forgets the token of context `name`, keeping the server so `berth login` can reuse it.
    pub fn logout(&mut self, name: &str) -> Result<()> {
        match self.contexts.iter_mut().find(|c| c.name == name) {
            Some(context) => {
                context.token = None;
                context.refresh_token = None;
                Ok(())
            }
            None => bail!("no context named '{name}'{}", self.known_names()),
        }
    }

    /// Keeps the renewed ID token and refresh token of the SSO session of context `name`.
    pub fn renew(&mut self, name: &str, token: &str, refresh_token: &str) -> Result<()> {
        match self.contexts.iter_mut().find(|c| c.name == name) {
            Some(context) => {
                context.token = Some(token.to_string());
                context.refresh_token = Some(refresh_token.to_string());
                Ok(())
            }
            None => bail!("no context named '{name}'{}", self.known_names()),
        }
    }

    pub fn use_context(&mut self, name: &str) -> Result<()> {
        if self.context(name).is_none() {
            bail!("no context named '{name}'{}", self.known_names());
        }
        self.current_context = Some(name.to_string());
        Ok(())
    }

    fn known_names(&self) -> String {
        if self.contexts.is_empty() {
            return ": run `berth login HOST` first".into();
        }
        let names: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
        format!(" (known: {})", names.join(", "))
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(unix)]
fn private_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(name: &str, server: &str, token: Option<&str>) -> ServerContext {
        ServerContext {
            name: name.into(),
            server: server.into(),
            token: token.map(Into::into),
            plaintext: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_config_lives_under_xdg_config_home_else_under_home() {
        assert_eq!(
            config_path_from(Some("/x".into()), Some("/home/u".into())).unwrap(),
            Path::new("/x/berth/config")
        );
        assert_eq!(
            config_path_from(Some("".into()), Some("/home/u".into())).unwrap(),
            Path::new("/home/u/.config/berth/config")
        );
        assert!(config_path_from(None, None).is_err());
    }

    #[test]
    fn a_saved_config_reads_back_and_only_its_owner_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth").join("config");
        assert_eq!(Config::load(&path).unwrap(), Config::default(), "a missing file is an empty config");

        let mut config = Config::default();
        config.upsert(context("a", "a.example:443", Some("tok-a")));
        config.upsert(context("b", "127.0.0.1:8080", Some("tok-b")));
        config.save(&path).unwrap();
        let read = Config::load(&path).unwrap();
        assert_eq!(read, config);
        assert_eq!(read.current().unwrap().name, "b");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("current-context: b"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no staging file is left behind");
    }

    #[test]
    fn login_again_replaces_the_context_and_logout_keeps_the_server() {
        let mut config = Config::default();
        config.upsert(context("local", "127.0.0.1:8080", Some("old")));
        config.upsert(context("other", "other:443", Some("x")));
        config.upsert(context("local", "127.0.0.1:8080", Some("new")));
        assert_eq!(config.contexts.len(), 2);
        assert_eq!(config.current().unwrap().token.as_deref(), Some("new"));
        assert_eq!(config.for_server("other:443").unwrap().name, "other");

        config.logout("local").unwrap();
        assert_eq!(config.current().unwrap().token, None);
        assert_eq!(config.current().unwrap().server, "127.0.0.1:8080");
        let error = config.use_context("nope").unwrap_err().to_string();
        assert_eq!(error, "no context named 'nope' (known: local, other)");
        config.use_context("other").unwrap();
        assert_eq!(config.current_context.as_deref(), Some("other"));
    }

    #[test]
    fn an_sso_context_keeps_its_refresh_token_as_argocd_names_it_until_logout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let mut config = Config::default();
        config.upsert(ServerContext {
            refresh_token: Some("r-1".into()),
            ..context("sso", "cd:443", Some("id-1"))
        });
        config.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("refresh-token: r-1"), "{text}");
        let mut read = Config::load(&path).unwrap();
        assert_eq!(read, config);

        read.renew("sso", "id-2", "r-2").unwrap();
        assert_eq!(
            (read.current().unwrap().token.as_deref(), read.current().unwrap().refresh_token.as_deref()),
            (Some("id-2"), Some("r-2"))
        );
        assert!(read.renew("gone", "a", "b").is_err());
        read.logout("sso").unwrap();
        assert_eq!(
            (read.current().unwrap().token.clone(), read.current().unwrap().refresh_token.clone()),
            (None, None)
        );
        read.save(&path).unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("refresh-token"));
        let old: Config =
            serde_saphyr::from_str("contexts:\n- name: a\n  server: a:443\n  token: t\n").unwrap();
        assert_eq!(old.contexts[0].refresh_token, None, "a config without the key reads as before");
    }

    #[test]
    fn an_empty_file_is_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        std::fs::write(&path, "contexts: [").unwrap();
        assert!(Config::load(&path).unwrap_err().to_string().starts_with("parsing "));
    }
}
