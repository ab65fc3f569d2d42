//! The application stream (`GET /api/v1/stream/applications`, newline-delimited JSON) and the paged
//! application list, over real HTTP against the real local cluster.

use berth_testkit::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::time::Duration;

mod common;
use common::*;

async fn get_as(url: &str, token: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

async fn create_app(apps: &Api<berth_api::Application>, name: &str, project: &str, team: &str) {
    let body = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "labels": {"team": team}},
        "spec": {"project": project,
                 "source": {"repoURL": "https://example.com/repo.git", "path": name},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}}
    });
    apps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
}

async fn label(apps: &Api<berth_api::Application>, name: &str, value: &str) {
    let patch = serde_json::json!({"metadata": {"labels": {"touched": value}}});
    apps.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// A local account `alice` who may only get dev-team's applications.
async fn add_alice(client: &kube::Client, ns: &str, policy: &str) {
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    for (name, data) in [
        ("argocd-cm", serde_json::json!({"accounts.alice": "login"})),
        ("argocd-rbac-cm", serde_json::json!({"policy.csv": policy})),
    ] {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data});
        maps.patch(name, &PatchParams::apply("berth-test"), &Patch::Apply(&body)).await.unwrap();
    }
    berth_server::auth::bootstrap(client, ns).await.unwrap();
    berth_server::auth::set_password(client, ns, "alice", "alice-pass-123").await.unwrap();
}

/// An open stream, read one event line at a time.
struct Watch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Watch {
    async fn open(url: &str, token: &str) -> Watch {
        let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let content_type = response.headers().get("content-type").unwrap().to_str().unwrap();
        assert_eq!(content_type, "application/json");
        Watch { response, buffer: Vec::new() }
    }

    /// The next event as `(type, app name)`, with the whole line; fails after 30 s without one.
    async fn next(&mut self) -> (String, String, serde_json::Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let event: serde_json::Value = serde_json::from_slice(&line).unwrap();
                let kind = event["result"]["type"].as_str().unwrap_or_else(|| panic!("{event}")).to_string();
                let name = event["result"]["application"]["metadata"]["name"].as_str().unwrap().to_string();
                return (kind, name, event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no event within 30 s")
                .unwrap()
                .expect("the stream ended");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    async fn next_pair(&mut self) -> (String, String) {
        let (kind, name, _) = self.next().await;
        (kind, name)
    }
}

fn pair(kind: &str, name: &str) -> (String, String) {
    (kind.to_string(), name.to_string())
}

#[tokio::test]
async fn stream_sends_permitted_apps_as_added_then_their_modifications_and_deletions() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("stream");
    ensure_namespace(&client, &ns).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    create_app(&apps, "web", "default", "web").await;
    create_app(&apps, "web-api", "dev-team", "web").await;
    create_app(&apps, "billing", "default", "money").await;
    add_alice(&client, &ns, "p, alice, applications, get, dev-team/*, allow\n").await;
    let server = start(&client, &ns).await;
    let stream = format!("{}/api/v1/stream/applications", server.base);

    let response = reqwest::get(&stream).await.unwrap();
    let status = response.status().as_u16();
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!((status, error["code"].as_i64()), (401, Some(16)), "{error}");

    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    let alice = token(&server.base, "alice", "alice-pass-123").await;
    let mut everything = Watch::open(&stream, &admin).await;
    let (kind, name, event) = everything.next().await;
    assert_eq!((kind.as_str(), name.as_str()), ("ADDED", "billing"));
    assert_eq!(event["result"]["application"]["spec"]["source"]["path"], "billing", "{event}");
    assert_eq!(everything.next_pair().await, pair("ADDED", "web"));
    assert_eq!(everything.next_pair().await, pair("ADDED", "web-api"));
    let mut limited = Watch::open(&stream, &alice).await;
    assert_eq!(limited.next_pair().await, pair("ADDED", "web-api"));

    // billing changes first: alice may not get it, so her next event is web-api's.
    label(&apps, "billing", "1").await;
    label(&apps, "web-api", "1").await;
    assert_eq!(limited.next_pair().await, pair("MODIFIED", "web-api"));
    assert_eq!(everything.next_pair().await, pair("MODIFIED", "billing"));
    let (kind, name, event) = everything.next().await;
    assert_eq!((kind.as_str(), name.as_str()), ("MODIFIED", "web-api"));
    assert_eq!(event["result"]["application"]["metadata"]["labels"]["touched"], "1", "{event}");

    apps.delete("web-api", &DeleteParams::default()).await.unwrap();
    create_app(&apps, "later", "dev-team", "web").await;
    assert_eq!(limited.next_pair().await, pair("DELETED", "web-api"));
    assert_eq!(limited.next_pair().await, pair("ADDED", "later"));
    assert_eq!(everything.next_pair().await, pair("DELETED", "web-api"));
    assert_eq!(everything.next_pair().await, pair("ADDED", "later"));
}

#[tokio::test]
async fn stream_filters_by_name_projects_selector_and_resource_version() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("stream-filter");
    ensure_namespace(&client, &ns).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    create_app(&apps, "web", "default", "web").await;
    create_app(&apps, "web-api", "dev-team", "web").await;
    create_app(&apps, "billing", "ops", "money").await;
    let server = start(&client, &ns).await;
    let stream = format!("{}/api/v1/stream/applications", server.base);
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;

    let mut by_name = Watch::open(&format!("{stream}?name=web"), &admin).await;
    let mut repeated = Watch::open(&format!("{stream}?projects=dev-team&projects=ops"), &admin).await;
    let mut comma = Watch::open(&format!("{stream}?projects=ops,default"), &admin).await;
    let mut selected = Watch::open(&format!("{stream}?selector=team%3Dmoney"), &admin).await;
    // With a resourceVersion and no name, the current apps are not sent: only what changes after.
    let mut since = Watch::open(&format!("{stream}?resourceVersion=1"), &admin).await;
    assert_eq!(by_name.next_pair().await, pair("ADDED", "web"));
    assert_eq!(repeated.next_pair().await, pair("ADDED", "billing"));
    assert_eq!(repeated.next_pair().await, pair("ADDED", "web-api"));
    assert_eq!(comma.next_pair().await, pair("ADDED", "billing"));
    assert_eq!(comma.next_pair().await, pair("ADDED", "web"));
    assert_eq!(selected.next_pair().await, pair("ADDED", "billing"));

    for name in ["web-api", "billing", "web"] {
        label(&apps, name, "2").await;
    }
    assert_eq!(by_name.next_pair().await, pair("MODIFIED", "web"));
    assert_eq!(repeated.next_pair().await, pair("MODIFIED", "web-api"));
    assert_eq!(repeated.next_pair().await, pair("MODIFIED", "billing"));
    assert_eq!(comma.next_pair().await, pair("MODIFIED", "billing"));
    assert_eq!(comma.next_pair().await, pair("MODIFIED", "web"));
    assert_eq!(selected.next_pair().await, pair("MODIFIED", "billing"));
    assert_eq!(since.next_pair().await, pair("MODIFIED", "web-api"));

    let (status, error) = get_as(&format!("{stream}?selector=team%20in%20(a)"), &admin).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(3)), "{error}");
}

fn names(body: &serde_json::Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_list_pages_by_name_with_continue_tokens_after_filters_and_rbac() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("pages");
    ensure_namespace(&client, &ns).await;
    let apps: Api<berth_api::Application> = Api::namespaced(client.clone(), &ns);
    // Created out of order; even ones in dev-team, odd ones in ops.
    let all: Vec<String> = (0..25).map(|i| format!("app-{i:02}")).collect();
    futures::future::join_all((0..25).rev().map(|i| {
        let apps = apps.clone();
        let name = all[i].clone();
        async move { create_app(&apps, &name, if i % 2 == 0 { "dev-team" } else { "ops" }, "web").await }
    }))
    .await;
    add_alice(&client, &ns, "p, alice, applications, get, dev-team/*, allow\n").await;
    let server = start(&client, &ns).await;
    let list = format!("{}/api/v1/applications", server.base);
    let admin = token(&server.base, "admin", &admin_password(&client, &ns).await).await;
    poll("the server to see the 25 apps", Duration::from_secs(30), || async {
        get_as(&list, &admin).await.1["items"].as_array().is_some_and(|i| i.len() == 25)
    })
    .await;

    // Every page of `url`: (names, remainingItemCount) each, following the continue tokens.
    let pages = |url: String, token: String| async move {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page_url = match &next {
                Some(token) => format!("{url}&continue={token}"),
                None => url.clone(),
            };
            let (status, body) = get_as(&page_url, &token).await;
            assert_eq!(status, 200, "{body}");
            found.push((names(&body), body["metadata"]["remainingItemCount"].as_u64()));
            next = body["metadata"]["continue"].as_str().map(str::to_string);
            if next.is_none() {
                return found;
            }
        }
    };
    let admin_pages = pages(format!("{list}?limit=10"), admin.clone()).await;
    let counts: Vec<(usize, Option<u64>)> = admin_pages.iter().map(|(n, r)| (n.len(), *r)).collect();
    assert_eq!(counts, [(10, Some(15)), (10, Some(5)), (5, None)]);
    let paged: Vec<String> = admin_pages.into_iter().flat_map(|(n, _)| n).collect();
    assert_eq!(paged, all);

    // Filters apply before paging: 12 odd apps in ops, pages of 5.
    let odd: Vec<String> = all.iter().skip(1).step_by(2).cloned().collect();
    let ops_pages = pages(format!("{list}?projects=ops&limit=5"), admin.clone()).await;
    let counts: Vec<(usize, Option<u64>)> = ops_pages.iter().map(|(n, r)| (n.len(), *r)).collect();
    assert_eq!(counts, [(5, Some(7)), (5, Some(2)), (2, None)]);
    assert_eq!(ops_pages.into_iter().flat_map(|(n, _)| n).collect::<Vec<_>>(), odd);

    // So does RBAC: alice pages through dev-team's 13 only.
    let even: Vec<String> = all.iter().step_by(2).cloned().collect();
    let alice = token(&server.base, "alice", "alice-pass-123").await;
    let alice_pages = pages(format!("{list}?limit=10"), alice).await;
    assert_eq!(alice_pages.iter().map(|(_, r)| *r).collect::<Vec<_>>(), [Some(3), None]);
    assert_eq!(alice_pages.into_iter().flat_map(|(n, _)| n).collect::<Vec<_>>(), even);

    // projects repeated (Argo CD's form) and as a comma list, with or without paging.
    let (_, both) = get_as(&format!("{list}?projects=ops&projects=dev-team"), &admin).await;
    assert_eq!(names(&both), all);
    assert!(both["metadata"].get("continue").is_none(), "{}", both["metadata"]);
    let (_, comma) = get_as(&format!("{list}?projects=nobody,ops"), &admin).await;
    assert_eq!(names(&comma), odd);

    for bad in ["continue=%21%21not-a-token", "limit=ten"] {
        let (status, error) = get_as(&format!("{list}?{bad}"), &admin).await;
        assert_eq!((status, error["code"].as_i64()), (400, Some(3)), "{bad}: {error}");
    }
}

#[tokio::test]
async fn a_shutdown_is_not_held_up_by_an_open_stream() {
    let client = client().await;
    install_crds(&client).await;
    let ns = unique("stream-stop");
    ensure_namespace(&client, &ns).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared = std::sync::Arc::new(berth_server::api::Shared::start(client.clone(), &ns).await.unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(berth_server::api::serve_on(listener, shared, async {
        let _ = stopped.await;
    }));
    let admin = token(&base, "admin", &admin_password(&client, &ns).await).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/stream/applications"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let _ = stop.send(());
    // The open stream is cut after the grace period; the server returns.
    tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("the server stops although a stream is open")
        .unwrap()
        .unwrap();
    drop(response);
}
