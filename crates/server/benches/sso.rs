//! `hack/bench sso`: what SSO costs, against a real Dex (from hack/deps): the login round trip of the
//! authorization code flow (authorize → Dex's password form → code → token endpoint), and the per-request
//! cost of checking an ID token (signature with the provider's published key, issuer, audience, expiry)
//! next to a local account's HS256 session token. Prints a Markdown table.

use berth_server::auth::oidc::Provider;
use berth_server::auth::oidc::config::{Hidden, ProviderKind, SsoConfig};
use berth_server::auth::oidc::flow::{self, LoginState};
use berth_server::auth::{Accounts, SecretKey, SessionManager};
use berth_testkit::dex::{self, Dex, DexOptions, StaticClient, StaticPassword};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let trials: usize = std::env::var("BENCH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let checks: u32 = 20_000;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dex = Dex::start(DexOptions {
        static_passwords: vec![
            StaticPassword::new("alice@example.com", "alice-password").groups(&["team-a"]),
        ],
        static_clients: vec![StaticClient::confidential("berth", "bench-secret", REDIRECT)],
        ..DexOptions::default()
    })
    .await;
    let config = SsoConfig {
        kind: ProviderKind::Oidc,
        url: "http://127.0.0.1:9".into(),
        name: "Dex".into(),
        issuer: dex.issuer().to_string(),
        client_id: "berth".into(),
        client_secret: Hidden("bench-secret".into()),
        cli_client_id: None,
        scopes: vec!["openid".into(), "email".into(), "groups".into()],
        id_token_claims: None,
        root_ca: None,
        logout_url: None,
        pkce: true,
        audiences: vec!["berth".into()],
        skip_audience_when_none: false,
        userinfo_groups: None,
    };
    let provider = Provider::new(Arc::new(config.clone()), None).unwrap();
    let http = dex::http_client();
    let mut rounds = Vec::new();
    let mut id_token = String::new();
    for _ in 0..trials {
        let start = Instant::now();
        let login = LoginState::new("/".into(), 0);
        let endpoint = provider.discovery().await.unwrap().authorization_endpoint.clone();
        let authorize = flow::authorization_url(&config, &endpoint, &login);
        let callback = dex::login(&http, &authorize, "alice@example.com", "alice-password").await.unwrap();
        let code = callback.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let tokens = provider.exchange(&code, &login.verifier).await.unwrap();
        id_token = tokens.id_token.unwrap();
        provider.verify(&id_token, SystemTime::now()).await.unwrap();
        rounds.push(start.elapsed());
    }
    let start = Instant::now();
    for _ in 0..checks {
        provider.verify(&id_token, SystemTime::now()).await.unwrap();
    }
    let oidc = start.elapsed() / checks;
    let hash = bcrypt::hash("bench-password", 4).unwrap();
    let secret = [("admin.password".to_string(), k8s_openapi::ByteString(hash.into_bytes()))].into();
    let accounts = Accounts::from_data(&Default::default(), &secret);
    let sessions = SessionManager::new(SecretKey::new(b"bench-key".to_vec()), accounts);
    let token = sessions.login("admin", "bench-password").unwrap();
    let start = Instant::now();
    for _ in 0..checks {
        sessions.verify(&token).unwrap();
    }
    let local = start.elapsed() / checks;
    println!("| measure ({trials} logins, {checks} checks) | berth |");
    println!("|---|---|");
    println!(
        "| login round trip through Dex (authorize, password form, code exchange, ID token check), p50 / p90 | {} / {} ms |",
        ms(percentile(rounds.clone(), 0.5)),
        ms(percentile(rounds, 0.9))
    );
    println!("| checking an ID token (RS256 with Dex's key, claims) | {:.1} µs |", oidc.as_secs_f64() * 1e6);
    println!("| checking a local session token (HS256) | {:.1} µs |", local.as_secs_f64() * 1e6);
}
