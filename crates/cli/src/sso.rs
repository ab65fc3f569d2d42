//! `berth login --sso`, as `argocd login --sso`: the OAuth 2.0 authorization code flow with PKCE (RFC 7636)
//! against the server's OIDC provider, a loopback callback server on 127.0.0.1, and the renewal of the saved
//! ID token with its refresh token. The ID token's signature is the server's to check when it is used; the
//! CLI checks only what ties the answer to this login (`state`, `nonce`).

use crate::client::http_client;
use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt as _;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Argo CD's `--sso-port` default.
pub const DEFAULT_PORT: u16 = 8085;
/// How long the CLI waits for the browser to come back.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The CLI's client at the server's own Dex (Argo CD's `argo-cd-cli`).
const DEX_CLI_CLIENT_ID: &str = "argo-cd-cli";
const DEFAULT_SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];
/// The callback path of the redirect URI, the only path the loopback server answers.
const CALLBACK_PATH: &str = "/auth/callback";

/// How `berth login --sso` runs.
#[derive(Debug, Clone)]
pub struct SsoOptions {
    pub port: u16,
    pub launch_browser: bool,
}

/// What the provider issued: the ID token is the session's bearer token.
#[derive(Deserialize)]
pub struct Tokens {
    pub id_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

/// The provider and client the server names in `GET /api/v1/settings`, as Argo CD's CLI picks them: the
/// server's own Dex (`<url>/api/dex`, client `argo-cd-cli`) when Dex has connectors, else `oidcConfig`'s
/// issuer with its CLI client (`cliClientID`, else `clientID`).
#[derive(Debug, Clone, PartialEq)]
pub struct OidcClient {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The issuer is served by the berth server itself, so the server's TLS choice (`--insecure`) applies.
    pub own_dex: bool,
}

impl OidcClient {
    /// `base` is how the CLI reaches the server (`https://HOST:PORT`), used when the settings name no `url`.
    pub fn from_settings(settings: &Value, base: &str) -> Result<OidcClient> {
        let url = settings["url"].as_str().map(|u| u.trim_end_matches('/')).filter(|u| !u.is_empty());
        let url = url.unwrap_or(base);
        let connectors = settings["dexConfig"]["connectors"].as_array().is_some_and(|c| !c.is_empty());
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let oidc = &settings["oidcConfig"];
        let scopes: Vec<String> = oidc["scopes"].as_array().into_iter().flatten().filter_map(&text).collect();
        let mut scopes =
            if scopes.is_empty() { DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect() } else { scopes };
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        if connectors {
            // As the server's own login asks: Dex then names the user by the connector's own id
            // (`federated_claims.user_id`), the same RBAC name for the UI's and the CLI's sessions.
            if !scopes.iter().any(|s| s == "federated:id") {
                scopes.push("federated:id".into());
            }
            let issuer = format!("{url}/api/dex");
            return Ok(OidcClient { issuer, client_id: DEX_CLI_CLIENT_ID.into(), scopes, own_dex: true });
        }
        let Some(issuer) = text(&oidc["issuer"]) else {
            bail!("the server has no SSO configured (neither dex.config nor oidc.config in argocd-cm)");
        };
        let Some(client_id) = text(&oidc["cliClientID"]).or_else(|| text(&oidc["clientID"])) else {
            bail!("the server's oidc.config names no clientID (nor cliClientID)");
        };
        let issuer = issuer.trim_end_matches('/').to_string();
        let own_dex = issuer == format!("{}/api/dex", base.trim_end_matches('/'));
        Ok(OidcClient { issuer, client_id, scopes, own_dex })
    }
}

/// The endpoints of the provider's discovery document.
#[derive(Deserialize, Debug, Clone)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// A provider ready to talk to: the client, its endpoints and the HTTP client its TLS calls for.
struct Provider {
    client: OidcClient,
    discovery: Discovery,
    http: reqwest::Client,
}

impl Provider {
    /// Reads the server's settings (no session needed) and the issuer's discovery document.
    async fn discover(server_http: &reqwest::Client, base: &str, insecure: bool) -> Result<Provider> {
        let settings = get_json(server_http, &format!("{base}/api/v1/settings"))
            .await
            .context("reading the server's SSO settings")?;
        let client = OidcClient::from_settings(&settings, base)?;
        // Another issuer is verified as any HTTPS site: `--insecure` is about the berth server only.
        let http = if client.own_dex { http_client(insecure)? } else { http_client(false)? };
        let url = format!("{}/.well-known/openid-configuration", client.issuer);
        let discovery: Discovery = serde_json::from_value(
            get_json(&http, &url)
                .await
                .with_context(|| format!("discovering the provider {}", client.issuer))?,
        )
        .with_context(|| format!("reading the discovery document of {}", client.issuer))?;
        for endpoint in [&discovery.authorization_endpoint, &discovery.token_endpoint] {
            check_endpoint(endpoint, &client.issuer)?;
        }
        if discovery.issuer.trim_end_matches('/') != client.issuer {
            bail!(
                "the provider at {} calls itself {}: check the issuer in argocd-cm",
                client.issuer,
                discovery.issuer
            );
        }
        Ok(Provider { client, discovery, http })
    }

    /// Scopes to ask for: the configured ones, with `offline_access` (a refresh token) when the provider
    /// lists it.
    fn scopes(&self) -> Vec<String> {
        let mut scopes = self.client.scopes.clone();
        let offline = "offline_access";
        let supported = &self.discovery.scopes_supported;
        if supported.iter().any(|s| s == offline) {
            if !scopes.iter().any(|s| s == offline) {
                scopes.push(offline.into());
            }
        } else if !supported.is_empty() {
            // A provider that lists its scopes without it may refuse the request for it.
            scopes.retain(|s| s != offline);
        }
        scopes
    }

    /// A POST of `form` to the token endpoint; the provider's `error_description` on failure.
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens> {
        let response = self
            .http
            .post(&self.discovery.token_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(form_body(form))
            .send()
            .await
            .map_err(|e| anyhow!("{}", crate::client::chain(&e)))
            .with_context(|| format!("calling the token endpoint {}", self.discovery.token_endpoint))?;
        let status = response.status();
        let text = response.text().await.context("reading the token endpoint's answer")?;
        if !status.is_success() {
            let body: Value = serde_json::from_str(&text).unwrap_or_default();
            let error = body["error"].as_str().unwrap_or("");
            let description = body["error_description"].as_str().unwrap_or("");
            bail!("the provider refused the token request: HTTP {status} {error} {description}");
        }
        // The error names the field, never the body: it holds tokens.
        serde_json::from_str::<Tokens>(&text).map_err(|e| {
            let why = match e.classify() {
                serde_json::error::Category::Data => "no id_token",
                _ => "not JSON",
            };
            anyhow!("the token endpoint's answer is unusable: {why}")
        })
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value> {
    let response =
        http.get(url).send().await.map_err(|e| anyhow!("GET {url}: {}", crate::client::chain(&e)))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("reading GET {url}"))?;
    if !status.is_success() {
        bail!("GET {url}: HTTP {status}");
    }
    serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON"))
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse("http://form.invalid/").expect("a constant URL");
    url.query_pairs_mut().extend_pairs(pairs.iter().copied());
    url.query().unwrap_or_default().to_string()
}

/// A random URL-safe string of 32 bytes of entropy (43 characters): PKCE verifier, `state`, `nonce`.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636's S256 challenge: base64url(SHA-256(verifier)), unpadded.
pub fn pkce_challenge(verifier: &str) -> String {
    berth_server::auth::oidc::flow::pkce_challenge(verifier)
}

/// The loopback redirect URI Argo CD's CLI uses.
pub fn redirect_uri(port: u16) -> String {
    format!("http://localhost:{port}{CALLBACK_PATH}")
}

/// What one login asks the provider for.
pub struct AuthorizationRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a str,
}

/// The authorization endpoint with the request's parameters added (any the endpoint already has are kept).
pub fn authorization_url(endpoint: &str, request: &AuthorizationRequest<'_>) -> Result<Url> {
    let mut url = Url::parse(endpoint).with_context(|| format!("the authorization endpoint {endpoint:?}"))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", request.client_id)
        .append_pair("redirect_uri", request.redirect_uri)
        .append_pair("scope", &request.scopes.join(" "))
        .append_pair("state", request.state)
        .append_pair("nonce", request.nonce)
        .append_pair("code_challenge", request.code_challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url)
}

/// What a request to the loopback server is.
#[derive(Debug, PartialEq)]
pub enum Callback {
    /// The provider's answer for this login.
    Code(String),
    /// The provider refused the login (`error`, `error_description`).
    Refused { error: String, description: String },
    /// A callback of another login (a stale tab) or a forgery: refused, the login goes on waiting.
    WrongState,
    /// The right state but neither a code nor an error.
    NoCode,
    /// Anything but `GET /auth/callback`.
    NotFound,
}

/// Reads the request target (`/auth/callback?code=…&state=…`) of a request to the loopback server.
pub fn read_callback(target: &str, expected_state: &str) -> Callback {
    let Ok(url) = Url::parse(&format!("http://localhost{target}")) else {
        return Callback::NotFound;
    };
    if url.path() != CALLBACK_PATH {
        return Callback::NotFound;
    }
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    // Compared in full; the state is single-use and unguessable, so timing reveals nothing worth having.
    if param("state").as_deref() != Some(expected_state) {
        return Callback::WrongState;
    }
    if let Some(error) = param("error") {
        return Callback::Refused { error, description: param("error_description").unwrap_or_default() };
    }
    match param("code").filter(|c| !c.is_empty()) {
        Some(code) => Callback::Code(code),
        None => Callback::NoCode,
    }
}

/// One request to the loopback server: its method, its target and the connection to answer on.
type Request = (String, String, TcpStream);

/// Reads the request head (bounded in size and time) of one connection.
async fn read_request(mut stream: TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.ok()??;
    let line = String::from_utf8_lossy(&head).lines().next()?.to_string();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    Some((method, target, stream))
}

/// Answers one request with a small HTML page and closes the connection.
async fn respond(mut stream: TcpStream, status: &str, message: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>berth</title></head>\
         <body><p>{}</p></body></html>\n",
        html_escape(message)
    );
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The provider's text goes into the page: escaped, so it cannot script the loopback origin.
fn html_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Serves `GET /auth/callback` on `listener` until the callback of this login (`state`) arrives or
/// `deadline` passes: the code and the browser's connection, answered once the login is done. A wrong
/// state is refused with a page saying so and the wait goes on; a refusal by the provider ends the login.
pub async fn wait_for_callback(
    listener: &TcpListener,
    state: &str,
    deadline: Instant,
) -> Result<(String, TcpStream)> {
    let (requests, mut incoming) = tokio::sync::mpsc::channel::<Request>(16);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let requests = requests.clone();
                tokio::spawn(async move {
                    if let Some(request) = read_request(stream).await {
                        let _ = requests.send(request).await;
                    }
                });
            }
            Some((method, target, stream)) = incoming.recv() => {
                if method != "GET" {
                    respond(stream, "405 Method Not Allowed", "Only GET is served here.").await;
                    continue;
                }
                match read_callback(&target, state) {
                    Callback::Code(code) => return Ok((code, stream)),
                    Callback::NotFound => respond(stream, "404 Not Found", "Not found.").await,
                    Callback::WrongState => {
                        respond(stream, "400 Bad Request",
                            "This callback does not belong to the login in progress (its state does not match). \
                             Start again from `berth login --sso` if the login does not finish.").await;
                        eprintln!("warning: refused a callback whose state does not match this login \
                                   (a stale browser tab, or another program); still waiting");
                    }
                    Callback::Refused { error, description } => {
                        let text = format!("{error}{}{description}", if description.is_empty() { "" } else { ": " });
                        respond(stream, "401 Unauthorized", &format!("Login failed: {text}")).await;
                        bail!("the identity provider refused the login: {text}");
                    }
                    Callback::NoCode => {
                        respond(stream, "400 Bad Request", "Login failed: the callback carries no code.").await;
                        bail!("the identity provider's callback carries no authorization code");
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                bail!(
                    "no login came back from the browser within {} minutes: run `berth login --sso` again",
                    CALLBACK_TIMEOUT.as_secs() / 60
                );
            }
        }
    }
}

/// The claims of a JWT, read without checking its signature (the server checks it on use).
pub fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `token` is a JWT whose `exp` is at or before `now` (seconds since the epoch).
pub fn expired(token: &str, now: i64) -> bool {
    claims(token).and_then(|c| c["exp"].as_i64()).is_some_and(|exp| exp <= now)
}

/// The name `argocd login --sso` greets: the email, else the name, else the subject.
pub fn display_name(claims: &Value) -> String {
    ["email", "name", "sub"]
        .iter()
        .find_map(|k| claims[*k].as_str().filter(|s| !s.is_empty()))
        .unwrap_or("unknown")
        .to_string()
}

/// Runs the whole login against the server at `base` and answers the provider's tokens and the ID token's
/// claims.
pub async fn login(base: &str, insecure: bool, options: &SsoOptions) -> Result<(Tokens, Value)> {
    let provider = Provider::discover(&http_client(insecure)?, base, insecure).await?;
    let listener = TcpListener::bind(("127.0.0.1", options.port)).await.with_context(|| {
        format!("listening for the SSO callback on 127.0.0.1:{} (pass another --sso-port)", options.port)
    })?;
    let (verifier, state, nonce) = (random_token(), random_token(), random_token());
    let redirect = redirect_uri(options.port);
    let scopes = provider.scopes();
    let challenge = pkce_challenge(&verifier);
    let url = authorization_url(
        &provider.discovery.authorization_endpoint,
        &AuthorizationRequest {
            client_id: &provider.client.client_id,
            redirect_uri: &redirect,
            scopes: &scopes,
            state: &state,
            nonce: &nonce,
            code_challenge: &challenge,
        },
    )?;
    if options.launch_browser {
        eprintln!("Opening browser for authentication");
        open_browser(url.as_str());
    }
    eprintln!("Performing authorization_code flow login: {url}");

    let (code, browser) = wait_for_callback(&listener, &state, Instant::now() + CALLBACK_TIMEOUT).await?;
    drop(listener);
    let finished = async {
        let tokens = provider
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("client_id", &provider.client.client_id),
                ("code_verifier", &verifier),
            ])
            .await?;
        let claims = claims(&tokens.id_token).context("the provider's ID token is not a JWT")?;
        if claims["nonce"].as_str() != Some(nonce.as_str()) {
            bail!("the provider's ID token does not carry this login's nonce: refused");
        }
        Ok((tokens, claims))
    }
    .await;
    match &finished {
        Ok(_) => respond(browser, "200 OK", "Authentication successful, you may close this window.").await,
        Err(e) => respond(browser, "500 Internal Server Error", &format!("Login failed: {e:#}")).await,
    }
    finished
}

/// Exchanges `refresh_token` for a new ID token at the provider the server names, which must be `issuer`
/// (the one that issued the session's token) when known: a server that now names another provider never
/// receives the refresh token's new home.
pub async fn refresh(
    server_http: &reqwest::Client,
    base: &str,
    insecure: bool,
    refresh_token: &str,
    issuer: Option<&str>,
) -> Result<Tokens> {
    let provider = Provider::discover(server_http, base, insecure).await?;
    if let Some(issuer) = issuer
        && issuer.trim_end_matches('/') != provider.client.issuer
    {
        bail!(
            "the server now names the provider {}, not {issuer} that issued this session: log in again",
            provider.client.issuer
        );
    }
    provider
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &provider.client.client_id),
        ])
        .await
}

/// The `iss` of a saved ID token (read, not verified: the CLI's own copy, to pin where it renews).
pub fn issuer_of(token: &str) -> Option<String> {
    claims(token)?["iss"].as_str().map(str::to_string)
}

/// An endpoint the provider publishes is used only over HTTPS, or over plain HTTP at the issuer's own
/// origin (a provider on loopback, the server's own Dex): never another scheme a browser opener would
/// follow (`file:`, `smb:`), nor a downgrade to another host.
fn check_endpoint(endpoint: &str, issuer: &str) -> Result<()> {
    let url = Url::parse(endpoint).with_context(|| format!("the provider's endpoint {endpoint:?}"))?;
    let same_origin = Url::parse(issuer).is_ok_and(|i| i.origin() == url.origin());
    match url.scheme() {
        "https" => Ok(()),
        "http" if same_origin => Ok(()),
        _ => bail!(
            "the provider's endpoint {endpoint} is neither HTTPS nor on the issuer's own origin: refused"
        ),
    }
}

/// Opens `url` in the desktop's browser, the URL one argument and no shell in between; a failure only
/// says so (the URL is printed anyway).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    match tokio::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            tokio::spawn(async move { child.wait().await });
        }
        Err(e) => eprintln!("could not start {opener} ({e}): open the URL below yourself"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_s256_of_the_verifier() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = random_token();
        assert_eq!(verifier.len(), 43, "32 random bytes, unpadded base64url");
        assert!(verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(verifier, random_token());
    }

    #[test]
    fn the_authorization_url_carries_every_parameter_encoded() {
        let scopes: Vec<String> = ["openid", "profile", "email"].iter().map(|s| s.to_string()).collect();
        let redirect = redirect_uri(8085);
        let url = authorization_url(
            "https://idp.example/auth?tenant=a",
            &AuthorizationRequest {
                client_id: "cli app",
                redirect_uri: &redirect,
                scopes: &scopes,
                state: "st&ate",
                nonce: "n=1",
                code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            },
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://idp.example/auth?tenant=a&response_type=code&client_id=cli+app\
             &redirect_uri=http%3A%2F%2Flocalhost%3A8085%2Fauth%2Fcallback&scope=openid+profile+email\
             &state=st%26ate&nonce=n%3D1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256"
        );
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        assert!(pairs.contains(&("redirect_uri".into(), "http://localhost:8085/auth/callback".into())));
        assert!(pairs.contains(&("state".into(), "st&ate".into())));
    }

    #[test]
    fn callbacks_are_read_by_path_state_code_and_error() {
        assert_eq!(read_callback("/auth/callback?code=abc&state=s1", "s1"), Callback::Code("abc".into()));
        assert_eq!(read_callback("/auth/callback?state=s1&code=a%2Bb", "s1"), Callback::Code("a+b".into()));
        assert_eq!(read_callback("/auth/callback?code=abc&state=s2", "s1"), Callback::WrongState);
        assert_eq!(read_callback("/auth/callback?code=abc", "s1"), Callback::WrongState);
        assert_eq!(
            read_callback("/auth/callback?error=access_denied&error_description=no+way&state=s1", "s1"),
            Callback::Refused { error: "access_denied".into(), description: "no way".into() }
        );
        assert_eq!(read_callback("/auth/callback?error=access_denied&state=x", "s1"), Callback::WrongState);
        assert_eq!(read_callback("/auth/callback?state=s1", "s1"), Callback::NoCode);
        assert_eq!(read_callback("/favicon.ico", "s1"), Callback::NotFound);
        assert_eq!(read_callback("/auth/callback/x?state=s1&code=c", "s1"), Callback::NotFound);
    }

    #[test]
    fn endpoints_are_https_or_the_issuers_own_origin() {
        assert!(check_endpoint("https://idp.example/auth", "https://idp.example").is_ok());
        assert!(check_endpoint("https://elsewhere.example/auth", "https://idp.example").is_ok());
        assert!(check_endpoint("http://127.0.0.1:5556/dex/auth", "http://127.0.0.1:5556/dex").is_ok());
        for bad in
            ["file:///etc/passwd", "smb://evil/share", "http://evil.example/auth", "javascript:alert(1)"]
        {
            assert!(check_endpoint(bad, "http://127.0.0.1:5556/dex").is_err(), "{bad}");
        }
        assert!(check_endpoint("http://idp.example/auth", "https://idp.example").is_err(), "no downgrade");
    }

    #[test]
    fn the_provider_is_the_servers_dex_with_connectors_else_its_oidc_config() {
        let base = "https://127.0.0.1:8080";
        let dex = json!({"url": "https://cd.example/", "dexConfig": {"connectors": [{"name": "GitHub", "type": "github"}]}});
        let client = OidcClient::from_settings(&dex, base).unwrap();
        assert_eq!(client.issuer, "https://cd.example/api/dex");
        assert_eq!(client.client_id, "argo-cd-cli");
        assert_eq!(client.scopes, ["openid", "profile", "email", "groups", "offline_access", "federated:id"]);
        assert!(client.own_dex);

        let oidc = json!({"url": "https://cd.example", "oidcConfig": {"issuer": "https://idp.example/",
            "clientID": "web", "cliClientID": "cli", "scopes": ["profile", "groups"]}});
        let client = OidcClient::from_settings(&oidc, base).unwrap();
        assert_eq!(
            (client.issuer.as_str(), client.client_id.as_str(), client.own_dex),
            ("https://idp.example", "cli", false)
        );
        assert_eq!(client.scopes, ["openid", "profile", "groups"], "openid is always asked for");
        let web_only = json!({"oidcConfig": {"issuer": "https://idp.example", "clientID": "web"}});
        assert_eq!(OidcClient::from_settings(&web_only, base).unwrap().client_id, "web");

        let error = OidcClient::from_settings(&json!({"url": "https://cd.example"}), base).unwrap_err();
        assert!(error.to_string().contains("no SSO configured"), "{error}");
        let no_client = json!({"oidcConfig": {"issuer": "https://idp.example"}});
        assert!(OidcClient::from_settings(&no_client, base).is_err());
        let dex_without_url = json!({"dexConfig": {"connectors": [{"name": "x", "type": "github"}]}});
        assert_eq!(
            OidcClient::from_settings(&dex_without_url, base).unwrap().issuer,
            format!("{base}/api/dex")
        );
    }

    fn jwt(claims: Value) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn id_token_claims_name_the_user_and_say_when_it_expires() {
        let token = jwt(json!({"sub": "C1", "email": "kim@example.com", "exp": 1_000}));
        let claims = claims(&token).unwrap();
        assert_eq!(display_name(&claims), "kim@example.com");
        assert_eq!(display_name(&json!({"sub": "C1"})), "C1");
        assert!(expired(&token, 1_000));
        assert!(!expired(&token, 999));
        assert!(!expired("not-a-jwt", 1_000), "an opaque token is left to the server");
        assert!(!expired(&jwt(json!({"sub": "x"})), 1_000), "no exp: never expires here");
    }

    #[test]
    fn provider_text_on_the_callback_page_is_escaped() {
        assert_eq!(html_escape("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn token_requests_are_form_encoded() {
        assert_eq!(
            form_body(&[
                ("grant_type", "authorization_code"),
                ("code", "a b&c"),
                ("redirect_uri", "http://l/x")
            ]),
            "grant_type=authorization_code&code=a+b%26c&redirect_uri=http%3A%2F%2Fl%2Fx"
        );
    }

    async fn get(port: u16, target: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn the_loopback_server_refuses_a_wrong_state_and_keeps_waiting_for_the_right_one() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wait = wait_for_callback(&listener, "good", Instant::now() + Duration::from_secs(30));
        let browser = async {
            let other = get(port, "/favicon.ico").await;
            assert!(other.starts_with("HTTP/1.1 404"), "{other}");
            let wrong = get(port, "/auth/callback?code=c&state=evil").await;
            assert!(wrong.starts_with("HTTP/1.1 400"), "{wrong}");
            assert!(wrong.contains("state does not match"), "{wrong}");
            get(port, "/auth/callback?code=the-code&state=good").await
        };
        let (waited, answer) = tokio::join!(
            async {
                let (code, stream) = wait.await.unwrap();
                respond(stream, "200 OK", "done").await;
                code
            },
            browser
        );
        assert_eq!(waited, "the-code");
        assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("<p>done</p></body></html>\n"));
    }

    #[tokio::test]
    async fn a_refusal_by_the_provider_ends_the_login_and_silence_times_out() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let wait = wait_for_callback(&listener, "s", Instant::now() + Duration::from_secs(30));
        let target = "/auth/callback?state=s&error=access_denied&error_description=%3Cb%3Enope";
        let (result, page) = tokio::join!(wait, get(port, target));
        let error = result.unwrap_err().to_string();
        assert_eq!(error, "the identity provider refused the login: access_denied: <b>nope");
        assert!(page.contains("access_denied: &lt;b&gt;nope"), "{page}");

        let error = wait_for_callback(&listener, "s", Instant::now()).await.unwrap_err().to_string();
        assert!(error.starts_with("no login came back from the browser within 5 minutes"), "{error}");
    }
}
