//! A real Dex (the OIDC provider Argo CD bundles) on loopback, for the SSO tests: the binary `hack/deps`
//! builds (found on `PATH`, as `eval "$(hack/cluster env)"` sets it), with memory storage, the approval
//! screen skipped, in a temporary directory, killed when dropped. [`login`] drives its HTML login
//! headlessly and hands back the redirect to the client with the authorization code.
//!
//! Identities, and the groups each carries (this Dex: hack/deps' `DEX_VERSION`):
//! - a [`StaticPassword`] (the password database, connector id `local`): its email, username, user ID and
//!   the [`StaticPassword::groups`] it is given (this Dex reads `groups` on a static password);
//! - [`Connector::MockCallback`] (no prompt at all): always user ID `0-385-28089-0`, name
//!   `Kilgore Trout`, email `kilgore@kilgore.trout` (verified), groups `["authors"]`;
//! - [`Connector::MockPassword`] (prompts for the one username and password it is given): the same
//!   Kilgore Trout, but with no groups.
//!
//! Groups reach the ID token's `groups` claim only when the `groups` scope is asked for.
//!
//! ```no_run
//! # async fn example() {
//! use berth_testkit::dex::{self, Dex, DexOptions, StaticClient, StaticPassword};
//! let dex = Dex::start(DexOptions {
//!     static_passwords: vec![StaticPassword::new("alice@example.com", "s3cret").groups(&["admins"])],
//!     static_clients: vec![StaticClient::public("argo-cd-cli", "http://localhost:8085/auth/callback")],
//!     ..DexOptions::default()
//! })
//! .await;
//! let authorize = format!(
//!     "{}?client_id=argo-cd-cli&response_type=code&scope=openid+email+groups&state=xyz\
//!      &redirect_uri=http%3A%2F%2Flocalhost%3A8085%2Fauth%2Fcallback",
//!     dex.authorization_endpoint()
//! );
//! let callback = dex::login(&dex::http_client(), &authorize, "alice@example.com", "s3cret").await.unwrap();
//! let code = callback.query_pairs().find(|(k, _)| k == "code").unwrap().1;
//! # }
//! ```

use crate::git_servers::free_port;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// More steps than any Dex login takes (choice, form, callback, approval, client): a loop ends here.
const MAX_STEPS: usize = 16;

/// A user of Dex's password database (`staticPasswords`).
#[derive(Clone, Debug)]
pub struct StaticPassword {
    /// What the user types as the login (Dex's password database logs in by email).
    pub email: String,
    /// The `name` claim.
    pub username: String,
    /// The `sub` claim's user part.
    pub user_id: String,
    /// In clear: [`Dex::start`] writes its bcrypt hash.
    pub password: String,
    /// The `groups` claim (with the `groups` scope).
    pub groups: Vec<String>,
}

impl StaticPassword {
    /// A user logging in with `email` and `password`, named after the email's local part, with a user ID
    /// derived from the email and no groups.
    pub fn new(email: &str, password: &str) -> StaticPassword {
        let username = email.split('@').next().unwrap_or(email).to_string();
        StaticPassword {
            email: email.to_string(),
            user_id: format!("{username}-id"),
            username,
            password: password.to_string(),
            groups: Vec::new(),
        }
    }

    /// The same user in `groups`.
    pub fn groups(mut self, groups: &[&str]) -> StaticPassword {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }
}

/// An OAuth2 client Dex knows (`staticClients`).
#[derive(Clone, Debug)]
pub struct StaticClient {
    pub id: String,
    /// `None`: a public client (`public: true`, PKCE, no secret at the token endpoint).
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
    pub name: String,
}

impl StaticClient {
    /// A public client (as Argo CD's `argo-cd-cli`).
    pub fn public(id: &str, redirect_uri: &str) -> StaticClient {
        StaticClient {
            id: id.to_string(),
            secret: None,
            redirect_uris: vec![redirect_uri.to_string()],
            name: id.to_string(),
        }
    }

    /// A confidential client with `secret` (as Argo CD's `argo-cd`).
    pub fn confidential(id: &str, secret: &str, redirect_uri: &str) -> StaticClient {
        StaticClient {
            id: id.to_string(),
            secret: Some(secret.to_string()),
            redirect_uris: vec![redirect_uri.to_string()],
            name: id.to_string(),
        }
    }
}

/// A test connector of Dex's (connector/mock); what each yields is in the [module docs](self).
#[derive(Clone, Debug)]
pub enum Connector {
    /// `mockCallback`: logs in without a prompt as Kilgore Trout, in group `authors`.
    MockCallback { id: String, name: String },
    /// `mockPassword`: asks for `username` and `password`, logs in as Kilgore Trout, in no group.
    MockPassword { id: String, name: String, username: String, password: String },
}

impl Connector {
    fn config(&self) -> Value {
        match self {
            Connector::MockCallback { id, name } => json!({ "type": "mockCallback", "id": id, "name": name }),
            Connector::MockPassword { id, name, username, password } => json!({
                "type": "mockPassword", "id": id, "name": name,
                "config": { "username": username, "password": password },
            }),
        }
    }
}

/// What [`Dex::start`] configures beyond its fixed settings (memory storage, `web.http`, the approval
/// screen skipped, the password database on).
#[derive(Clone, Debug, Default)]
pub struct DexOptions {
    /// The issuer, when Dex is reached through something else (berth serving it under `<url>/api/dex`);
    /// `listen` must then be given too. By default `http://127.0.0.1:<free port>/dex`.
    pub issuer: Option<String>,
    /// Where Dex listens (`web.http`); only with `issuer`.
    pub listen: Option<SocketAddr>,
    pub static_passwords: Vec<StaticPassword>,
    pub static_clients: Vec<StaticClient>,
    pub connectors: Vec<Connector>,
}

/// A running Dex.
pub struct Dex {
    child: Child,
    issuer: String,
    dir: tempfile::TempDir,
}

impl Dex {
    /// Starts Dex with `options` and waits (with a deadline) until its discovery document answers. Panics
    /// naming `hack/deps` when the binary is missing, or with Dex's log when it does not start.
    pub async fn start(options: DexOptions) -> Dex {
        let mut base = json!({
            "storage": { "type": "memory" },
            "oauth2": { "skipApprovalScreen": true },
            "enablePasswordDB": true,
            "staticPasswords": options.static_passwords.iter().map(|p| json!({
                "email": p.email,
                "username": p.username,
                "userID": p.user_id,
                // Dex refuses hashes below its default cost (10).
                "hash": bcrypt::hash(&p.password, 10).expect("a bcrypt hash of a test password"),
                "groups": p.groups,
            })).collect::<Vec<_>>(),
            "staticClients": options.static_clients.iter().map(|c| {
                let mut client = json!({ "id": c.id, "name": c.name, "redirectURIs": c.redirect_uris });
                match &c.secret {
                    Some(secret) => client["secret"] = json!(secret),
                    None => client["public"] = json!(true),
                }
                client
            }).collect::<Vec<_>>(),
            "connectors": options.connectors.iter().map(Connector::config).collect::<Vec<_>>(),
        });
        match (options.issuer, options.listen) {
            (Some(issuer), Some(listen)) => {
                base["issuer"] = json!(issuer);
                base["web"] = json!({ "http": listen.to_string() });
                let ready = ready_url(&issuer, Some(listen));
                match launch(&base.to_string(), &issuer, &ready).await {
                    Ok(dex) => dex,
                    Err(failure) => panic!("Dex could not be started:\n{failure}"),
                }
            }
            (None, None) => {
                // A free port may be taken before Dex binds it: another one is tried.
                let mut failures = Vec::new();
                for _ in 0..3 {
                    let port = free_port();
                    let issuer = format!("http://127.0.0.1:{port}/dex");
                    base["issuer"] = json!(issuer);
                    base["web"] = json!({ "http": format!("127.0.0.1:{port}") });
                    let ready = ready_url(&issuer, None);
                    match launch(&base.to_string(), &issuer, &ready).await {
                        Ok(dex) => return dex,
                        Err(failure) => failures.push(failure),
                    }
                }
                panic!("Dex could not be started:\n{}", failures.join("\n"));
            }
            _ => panic!("DexOptions: `issuer` and `listen` go together"),
        }
    }

    /// Starts Dex with a complete configuration (YAML or JSON) the caller wrote, as berth generates
    /// them, and waits until `<issuer>/.well-known/openid-configuration` answers (so an issuer served
    /// through berth needs berth up). The issuer is read from the top-level `issuer` key.
    pub async fn start_with_config(config: &str) -> Dex {
        let issuer = config_issuer(config).expect("the Dex configuration has a top-level `issuer`");
        let ready = ready_url(&issuer, None);
        match launch(config, &issuer, &ready).await {
            Ok(dex) => dex,
            Err(failure) => panic!("Dex could not be started:\n{failure}"),
        }
    }

    /// The issuer, as in the ID tokens' `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `<issuer>/auth`, where an authorization request starts.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/auth", self.issuer)
    }

    /// `<issuer>/token`, where a code is exchanged.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// What Dex logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dex.log")).unwrap_or_default()
    }

    /// Stops Dex now (dropping it does the same).
    pub fn stop(self) {}
}

impl Drop for Dex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dex serve` on `config` and waits for `ready`; on failure, kills it and says why with its log.
async fn launch(config: &str, issuer: &str, ready: &str) -> Result<Dex, String> {
    let binary = binary();
    let dir = tempfile::tempdir().expect("a temporary directory for Dex");
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("dex.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(&binary)
        .arg("serve")
        .arg(&config_path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e} (run hack/deps)", binary.display()));
    let mut dex = Dex { child, issuer: issuer.trim_end_matches('/').to_string(), dir };
    let http = http_client();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = dex.child.try_wait().unwrap() {
            return Err(format!("{issuer}: dex exited with {status}; its log:\n{}", dex.log()));
        }
        if let Ok(response) = http.get(ready).send().await
            && response.status().is_success()
        {
            return Ok(dex);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{ready} did not answer within {START_TIMEOUT:?}; Dex's log:\n{}",
                dex.log()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The discovery document's URL, at `listen` when given (Dex answers there whatever the issuer's host).
fn ready_url(issuer: &str, listen: Option<SocketAddr>) -> String {
    let issuer = issuer.trim_end_matches('/');
    match (listen, Url::parse(issuer)) {
        (Some(listen), Ok(url)) => {
            format!("http://{listen}{}/.well-known/openid-configuration", url.path().trim_end_matches('/'))
        }
        _ => format!("{issuer}/.well-known/openid-configuration"),
    }
}

/// The top-level `issuer` of a Dex configuration in JSON, or in YAML (a line `issuer: <url>` at the
/// left margin, quoted or not).
fn config_issuer(config: &str) -> Option<String> {
    if config.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(config).ok()?;
        return value["issuer"].as_str().map(str::to_string);
    }
    config.lines().find_map(|line| {
        let value = line.strip_prefix("issuer:")?.split(" #").next()?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// The `dex` on `PATH` (hack/deps links it into the directory `hack/cluster env` puts there).
fn binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("dex"))
        .find(|path: &PathBuf| Path::is_file(path));
    let Some(path) = found else {
        panic!(
            "the SSO tests need the real `dex` on PATH: run `hack/deps` (it builds it), then \
             `eval \"$(hack/cluster env)\"` (hack/test does both)"
        );
    };
    path
}

/// An HTTP client for [`login`]: it follows no redirect, so the one leaving Dex is seen, not fetched.
pub fn http_client() -> reqwest::Client {
    crate::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client for Dex")
}

/// Why [`login`] did not reach the client's redirect. Never holds the password.
#[derive(Debug)]
pub struct LoginError(String);

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dex login: {}", self.0)
    }
}

impl std::error::Error for LoginError {}

/// Logs in at `authorize_url` (Dex's `<issuer>/auth?client_id=…`) as `username` with `password` and
/// returns the first redirect that leaves Dex (the client's `redirect_uri` with `code` and `state`, or
/// with `error`) without fetching it. On Dex's connector choice the password database (`local`) is
/// taken; add `connector_id=<id>` to the URL for another one (a `mockPassword`). `http` must follow no
/// redirect ([`http_client`]).
pub async fn login(
    http: &reqwest::Client,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> Result<Url, LoginError> {
    drive(http, authorize_url, Some((username, password))).await
}

/// As [`login`], through a connector that asks nothing (`mockCallback`): on Dex's connector choice the
/// first one other than the password database is taken, unless the URL names one with `connector_id`.
pub async fn login_without_password(http: &reqwest::Client, authorize_url: &str) -> Result<Url, LoginError> {
    drive(http, authorize_url, None).await
}

async fn drive(
    http: &reqwest::Client,
    authorize_url: &str,
    credentials: Option<(&str, &str)>,
) -> Result<Url, LoginError> {
    let fail = |message: String| Err(LoginError(message));
    let start = Url::parse(authorize_url).map_err(|e| LoginError(format!("{authorize_url}: {e}")))?;
    // Dex's own pages are under the issuer's path, which the authorization endpoint ends.
    let prefix = start.path().strip_suffix("/auth").unwrap_or("").to_string();
    let is_dex = |url: &Url| {
        url.origin() == start.origin()
            && (url.path() == prefix || url.path().starts_with(&format!("{prefix}/")))
    };
    let wanted_connector =
        start.query_pairs().find(|(k, _)| k == "connector_id").map(|(_, v)| v.into_owned());
    let mut cookies: Vec<(String, String)> = Vec::new();
    let mut url = start.clone();
    let mut form: Option<Vec<(&str, &str)>> = None;
    let mut password_sent = false;
    for _ in 0..MAX_STEPS {
        let mut request = match &form {
            Some(fields) => http.post(url.clone()).form(fields),
            None => http.get(url.clone()),
        };
        if !cookies.is_empty() {
            let header = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            request = request.header(reqwest::header::COOKIE, header);
        }
        let response =
            request.send().await.map_err(|e| LoginError(format!("{}: {e}", without_query(&url))))?;
        if response.url() != &url {
            return fail("the HTTP client follows redirects: build it with dex::http_client()".into());
        }
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let pair = value.to_str().unwrap_or_default().split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                cookies.retain(|(k, _)| k != name.trim());
                cookies.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let status = response.status();
        if status.is_redirection() {
            let location =
                response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).ok_or_else(
                    || LoginError(format!("{status} without a Location from {}", without_query(&url))),
                )?;
            let next = url.join(location).map_err(|e| LoginError(format!("Location {location}: {e}")))?;
            if !is_dex(&next) {
                return Ok(next);
            }
            url = next;
            form = None;
            continue;
        }
        let page = response.text().await.unwrap_or_default();
        let asks_password = page.contains("name=\"password\"");
        // A refused password is the form again (401 from the password database).
        if asks_password && password_sent {
            let username = credentials.map_or("", |(username, _)| username);
            return fail(format!("Dex refused the login of {username}: {}", page_text(&page)));
        }
        if status != StatusCode::OK {
            return fail(format!("{} answered {status}: {}", without_query(&url), page_text(&page)));
        }
        if asks_password {
            let Some((username, password)) = credentials else {
                return fail(format!("{} asks for a password and none was given", without_query(&url)));
            };
            let action = form_action(&page).unwrap_or_default();
            url = url.join(&action).map_err(|e| LoginError(format!("form action {action}: {e}")))?;
            form = Some(vec![("login", username), ("password", password)]);
            password_sent = true;
            continue;
        }
        let connectors = connector_links(&page, &url, &prefix);
        if connectors.is_empty() {
            return fail(format!(
                "{} shows neither a login form nor a connector choice (an approval screen? set \
                 oauth2.skipApprovalScreen): {}",
                without_query(&url),
                page_text(&page)
            ));
        }
        let chosen = connectors.iter().find(|(id, _)| match (&wanted_connector, credentials) {
            (Some(wanted), _) => id == wanted,
            (None, Some(_)) => id == "local",
            (None, None) => id != "local",
        });
        let Some((_, link)) = chosen.or(connectors.first().filter(|_| credentials.is_some())) else {
            let ids: Vec<_> = connectors.iter().map(|(id, _)| id.as_str()).collect();
            return fail(format!("no connector to choose among {ids:?}"));
        };
        url = link.clone();
        form = None;
    }
    fail(format!("no redirect out of Dex after {MAX_STEPS} steps (last {})", without_query(&url)))
}

/// A URL without its query (which may carry a code or a state) for messages.
fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The `action` of the page's first form (empty: the page's own URL).
fn form_action(page: &str) -> Option<String> {
    let form = &page[page.find("<form")?..];
    let tag = &form[..form.find('>')?];
    attribute(tag, "action").map(|a| unescape(&a))
}

/// The value of `name="…"` in an HTML tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')?;
    Some(tag[start..start + end].to_string())
}

/// The connector choice's links (`<prefix>/auth/<id>?…`), as (connector id, absolute URL).
fn connector_links(page: &str, base: &Url, prefix: &str) -> Vec<(String, Url)> {
    let mut links = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find("href=\"") {
        rest = &rest[at..];
        let Some(href) = attribute(rest, "href") else { break };
        rest = &rest[6..];
        let Ok(link) = base.join(&unescape(&href)) else { continue };
        let Some(id) = link.path().strip_prefix(&format!("{prefix}/auth/")) else { continue };
        if !id.is_empty() && !id.contains('/') && link.origin() == base.origin() {
            links.push((id.to_string(), link));
        }
    }
    links
}

/// The HTML entities Go's html/template writes in attributes.
fn unescape(text: &str) -> String {
    text.replace("&#43;", "+")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A page's visible text, short, for a message (Dex's error pages say what went wrong).
fn page_text(page: &str) -> String {
    let body = page.find("<body").map_or(page, |at| &page[at..]);
    let body = body.find("<script").map_or(body, |at| &body[..at]);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_read_from_a_yaml_or_json_configuration() {
        let yaml = "# berth's\nissuer: \"https://berth.example.com/api/dex\"\nstorage:\n  type: memory\n";
        assert_eq!(config_issuer(yaml).as_deref(), Some("https://berth.example.com/api/dex"));
        assert_eq!(
            config_issuer("issuer: http://127.0.0.1:5556/dex\n").as_deref(),
            Some("http://127.0.0.1:5556/dex")
        );
        assert_eq!(config_issuer(r#"{"issuer": "http://a/dex"}"#).as_deref(), Some("http://a/dex"));
        assert_eq!(config_issuer("web:\n  issuer: nested\n"), None);
    }

    #[test]
    fn a_proxied_issuer_is_checked_at_the_listen_address_under_its_path() {
        let listen: SocketAddr = "127.0.0.1:5556".parse().unwrap();
        assert_eq!(
            ready_url("https://berth.example.com/api/dex/", Some(listen)),
            "http://127.0.0.1:5556/api/dex/.well-known/openid-configuration"
        );
    }

    #[test]
    fn connector_links_are_found_and_unescaped() {
        let page = r#"<a href="/dex/auth/local?client_id=cli&amp;scope=openid&#43;groups">Email</a>
            <a href="/dex/auth/mock?client_id=cli&amp;state=s">Example</a><a href="/dex/static/x.css">"#;
        let base = Url::parse("http://127.0.0.1:1/dex/auth?client_id=cli").unwrap();
        let links = connector_links(page, &base, "/dex");
        let ids: Vec<_> = links.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["local", "mock"]);
        assert_eq!(links[0].1.query(), Some("client_id=cli&scope=openid+groups"));
    }

    #[test]
    fn the_form_action_is_the_first_forms() {
        let page = r#"<div><form method="post" action="/dex/auth/local/login?back=&amp;state=x"><input name="login">"#;
        assert_eq!(form_action(page).as_deref(), Some("/dex/auth/local/login?back=&state=x"));
    }
}
