//! Dex's configuration from argocd-cm's `dex.config`, as Argo CD generates it for its Dex server: the
//! issuer `<url>/api/dex`, in-memory storage, the server's client `argo-cd` (its secret derived from
//! `server.secretkey`), the CLI's public client `argo-cd-cli`, and everything `dex.config` says (its
//! connectors, its own static clients, other Dex settings) with `$…` references resolved.

use super::config::{CALLBACK_PATH, DEX_CLI_CLIENT_ID, DEX_PATH, DEX_SERVER_CLIENT_ID, dex_client_secret};
use serde_json::{Value, json};

/// Dex's configuration, as YAML text (it holds client secrets: write it to a file only its reader can
/// read). `resolved` is `dex.config` with references resolved ([`super::config::resolved_dex_config`]);
/// `listen` is where Dex serves HTTP (`127.0.0.1:5556`).
pub fn generate(url: &str, resolved: &Value, server_secret_key: &[u8], listen: &str) -> String {
    let url = url.trim_end_matches('/');
    let mut config = match resolved {
        Value::Object(map) => map.clone(),
        _ => Default::default(),
    };
    config.insert("issuer".into(), json!(format!("{url}{DEX_PATH}")));
    config.entry("storage").or_insert_with(|| json!({"type": "memory"}));
    let mut web = config.get("web").and_then(Value::as_object).cloned().unwrap_or_default();
    web.insert("http".into(), json!(listen));
    config.insert("web".into(), Value::Object(web));
    let mut oauth2 = config.get("oauth2").and_then(Value::as_object).cloned().unwrap_or_default();
    oauth2.entry("skipApprovalScreen").or_insert(json!(true));
    config.insert("oauth2".into(), Value::Object(oauth2));
    let mut clients = vec![
        json!({
            "id": DEX_SERVER_CLIENT_ID,
            "name": "Argo CD",
            "secret": dex_client_secret(server_secret_key),
            "redirectURIs": [format!("{url}{CALLBACK_PATH}")],
        }),
        json!({
            "id": DEX_CLI_CLIENT_ID,
            "name": "Argo CD CLI",
            "public": true,
            "redirectURIs": ["http://localhost", "http://localhost:8085/auth/callback"],
        }),
    ];
    // Clients dex.config declares come after berth's; one that reuses berth's ids is left out.
    if let Some(Value::Array(own)) = config.get("staticClients") {
        for client in own {
            let id = client.get("id").and_then(Value::as_str).unwrap_or_default();
            if id != DEX_SERVER_CLIENT_ID && id != DEX_CLI_CLIENT_ID {
                clients.push(client.clone());
            }
        }
    }
    config.insert("staticClients".into(), Value::Array(clients));
    serde_saphyr::to_string(&Value::Object(config)).expect("JSON values serialize as YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_adds_argo_cds_clients_and_keeps_the_users_connectors() {
        let resolved = serde_json::json!({
            "connectors": [{"type": "github", "id": "github", "name": "GitHub",
                "config": {"clientID": "a", "clientSecret": "resolved-secret"}}],
            "staticClients": [{"id": "argo-cd", "secret": "hijack"}, {"id": "grafana", "secret": "g"}],
        });
        let text = generate("https://cd.example.com/", &resolved, b"server-key", "127.0.0.1:5556");
        let parsed: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(parsed["issuer"], "https://cd.example.com/api/dex");
        assert_eq!(parsed["storage"]["type"], "memory");
        assert_eq!(parsed["web"]["http"], "127.0.0.1:5556");
        assert_eq!(parsed["oauth2"]["skipApprovalScreen"], true);
        let clients = parsed["staticClients"].as_array().unwrap();
        let ids: Vec<&str> = clients.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["argo-cd", "argo-cd-cli", "grafana"]);
        assert_eq!(clients[0]["secret"], dex_client_secret(b"server-key").as_str());
        assert_eq!(clients[0]["redirectURIs"][0], "https://cd.example.com/auth/callback");
        assert_eq!(clients[1]["public"], true);
        assert_eq!(parsed["connectors"][0]["config"]["clientSecret"], "resolved-secret");
    }
}
