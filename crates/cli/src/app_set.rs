//! `berth app set`: changes parts of an application's spec, as `argocd app set` does; what is not named
//! stays as it is.

use crate::client::Client;
use crate::output::outln;
use anyhow::{Result, bail};
use clap::{ArgAction, Args};
use serde_json::Value;

#[derive(Args, Debug, Default)]
pub struct SetArgs {
    name: String,
    /// Repository URL of the source.
    #[arg(long)]
    repo: Option<String>,
    /// Directory of the source inside the repository.
    #[arg(long)]
    path: Option<String>,
    /// Branch, tag, commit (or chart version) to follow.
    #[arg(long)]
    revision: Option<String>,
    #[arg(long)]
    dest_server: Option<String>,
    /// A destination cluster by name (instead of `--dest-server`).
    #[arg(long, conflicts_with = "dest_server")]
    dest_name: Option<String>,
    #[arg(long)]
    dest_namespace: Option<String>,
    #[arg(long)]
    project: Option<String>,
    /// `automated` (or `auto`) to sync on every change, `none` to sync only on request.
    #[arg(long)]
    sync_policy: Option<String>,
    /// With automated sync, delete what git no longer has.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    auto_prune: Option<bool>,
    /// With automated sync, revert changes made in the cluster.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    self_heal: Option<bool>,
    /// A sync option such as `CreateNamespace=true` (repeatable; replaces one with the same name).
    #[arg(long = "sync-option")]
    sync_options: Vec<String>,
    /// A Helm value file, relative to the chart (repeatable; replaces the list).
    #[arg(long = "values")]
    values: Vec<String>,
    /// A Helm parameter NAME=VALUE (repeatable; replaces one with the same name).
    #[arg(long = "helm-set", value_name = "NAME=VALUE")]
    helm_set: Vec<String>,
    /// A Kustomize image override such as `web=myorg/web:v2` (repeatable).
    #[arg(long = "kustomize-image")]
    kustomize_images: Vec<String>,
}

/// The spec with the flags applied; an error names the flag that cannot apply.
pub fn apply(mut spec: Value, args: &SetArgs) -> Result<Value> {
    if !spec["sources"].as_array().is_none_or(|s| s.is_empty())
        && (args.repo.is_some() || args.path.is_some() || args.revision.is_some())
    {
        bail!(
            "the application has several sources (spec.sources): edit it with `berth app create --upsert -f`"
        );
    }
    let set = |target: &mut Value, key: &str, value: &Option<String>| {
        if let Some(v) = value {
            target[key] = v.clone().into();
        }
    };
    if !spec["source"].is_object() {
        spec["source"] = serde_json::json!({});
    }
    set(&mut spec["source"], "repoURL", &args.repo);
    set(&mut spec["source"], "path", &args.path);
    set(&mut spec["source"], "targetRevision", &args.revision);
    if args.dest_server.is_some() {
        spec["destination"].as_object_mut().map(|d| d.remove("name"));
    }
    if args.dest_name.is_some() {
        spec["destination"].as_object_mut().map(|d| d.remove("server"));
    }
    set(&mut spec["destination"], "server", &args.dest_server);
    set(&mut spec["destination"], "name", &args.dest_name);
    set(&mut spec["destination"], "namespace", &args.dest_namespace);
    set(&mut spec, "project", &args.project);
    match args.sync_policy.as_deref() {
        None => {}
        Some("automated" | "auto" | "automatic") if !spec["syncPolicy"]["automated"].is_object() => {
            spec["syncPolicy"]["automated"] = serde_json::json!({});
        }
        Some("automated" | "auto" | "automatic") => {}
        Some("none") => {
            spec["syncPolicy"].as_object_mut().map(|p| p.remove("automated"));
        }
        Some(other) => bail!("--sync-policy {other:?}: use automated or none"),
    }
    for (flag, key, value) in
        [("--auto-prune", "prune", args.auto_prune), ("--self-heal", "selfHeal", args.self_heal)]
    {
        if let Some(value) = value {
            if !spec["syncPolicy"]["automated"].is_object() {
                bail!("{flag} needs automated sync: add --sync-policy automated");
            }
            spec["syncPolicy"]["automated"][key] = value.into();
        }
    }
    for option in &args.sync_options {
        let Some((name, _)) = option.split_once('=') else {
            bail!("--sync-option {option:?}: expected NAME=VALUE, such as CreateNamespace=true");
        };
        let list = spec["syncPolicy"]["syncOptions"].as_array().cloned().unwrap_or_default();
        let mut list: Vec<Value> = list
            .into_iter()
            .filter(|o| o.as_str().and_then(|o| o.split_once('=')).is_none_or(|(n, _)| n != name))
            .collect();
        list.push(option.clone().into());
        spec["syncPolicy"]["syncOptions"] = list.into();
    }
    if !args.values.is_empty() {
        spec["source"]["helm"]["valueFiles"] = args.values.clone().into();
    }
    for parameter in &args.helm_set {
        let Some((name, value)) = parameter.split_once('=') else {
            bail!("--helm-set {parameter:?}: expected NAME=VALUE");
        };
        let list = spec["source"]["helm"]["parameters"].as_array().cloned().unwrap_or_default();
        let mut list: Vec<Value> = list.into_iter().filter(|p| p["name"] != name).collect();
        list.push(serde_json::json!({"name": name, "value": value}));
        spec["source"]["helm"]["parameters"] = list.into();
    }
    if !args.kustomize_images.is_empty() {
        let list = spec["source"]["kustomize"]["images"].as_array().cloned().unwrap_or_default();
        let image_name = |i: &str| i.split(['=', ':', '@']).next().unwrap_or_default().to_string();
        let mut list: Vec<Value> = list
            .into_iter()
            .filter(|i| {
                !args
                    .kustomize_images
                    .iter()
                    .any(|n| image_name(n) == image_name(i.as_str().unwrap_or_default()))
            })
            .collect();
        list.extend(args.kustomize_images.iter().map(|i| Value::from(i.clone())));
        spec["source"]["kustomize"]["images"] = list.into();
    }
    Ok(spec)
}

pub async fn run(client: &Client, args: SetArgs) -> Result<()> {
    let app = client.get_application(&args.name, None).await?;
    let spec = apply(app["spec"].clone(), &args)?;
    if spec == app["spec"] {
        outln!("application '{}' unchanged", args.name)?;
        return Ok(());
    }
    client.update_application_spec(&args.name, &spec).await?;
    outln!("application '{}' updated", args.name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> SetArgs {
        SetArgs { name: name.into(), ..Default::default() }
    }

    #[test]
    fn named_fields_change_and_the_rest_stays() {
        let spec = serde_json::json!({"project": "default",
            "source": {"repoURL": "https://git/x.git", "path": "apps/web", "targetRevision": "HEAD"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true", "PruneLast=true"]}});
        let mut a = args("web");
        a.revision = Some("v2".into());
        a.sync_policy = Some("automated".into());
        a.self_heal = Some(true);
        a.sync_options = vec!["CreateNamespace=false".into()];
        a.helm_set = vec!["replicas=3".into()];
        let out = apply(spec, &a).unwrap();
        assert_eq!(out["source"]["targetRevision"], "v2");
        assert_eq!(out["source"]["path"], "apps/web");
        assert_eq!(out["syncPolicy"]["automated"], serde_json::json!({"selfHeal": true}));
        assert_eq!(
            out["syncPolicy"]["syncOptions"],
            serde_json::json!(["PruneLast=true", "CreateNamespace=false"])
        );
        assert_eq!(
            out["source"]["helm"]["parameters"],
            serde_json::json!([{"name": "replicas", "value": "3"}])
        );
        let mut none = args("web");
        none.sync_policy = Some("none".into());
        assert!(apply(out, &none).unwrap()["syncPolicy"].get("automated").is_none());
    }

    #[test]
    fn flags_that_cannot_apply_say_why() {
        let spec = serde_json::json!({"source": {"repoURL": "r"}, "destination": {}});
        let mut a = args("web");
        a.self_heal = Some(true);
        assert!(apply(spec.clone(), &a).unwrap_err().to_string().contains("--sync-policy automated"));
        let mut b = args("web");
        b.sync_policy = Some("sometimes".into());
        assert!(apply(spec, &b).is_err());
        let multi = serde_json::json!({"sources": [{"repoURL": "a"}, {"repoURL": "b"}]});
        let mut c = args("web");
        c.path = Some("x".into());
        assert!(apply(multi, &c).unwrap_err().to_string().contains("several sources"));
    }
}
