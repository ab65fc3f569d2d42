//! The confinement of render tools, shown with `/bin/sh` (and `/bin/bash`) as the "tool": a tool made
//! to run code reads and writes only its render's files, starts no other program, connects nowhere
//! unless its render may use the network, and stops at its memory limit with a clear error. Landlock
//! is available on the machines berth is tested on: without it these tests fail, never pass vacuously.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_repo::render::helm::render_helm_path;
use berth_repo::render::{RenderError, ToolContext, tool};

/// A cache laid out as berth's: trees of two repos, the render work directory with one scratch
/// directory, and files standing for the ServiceAccount token, argocd-secret's mount and a kubeconfig.
struct Layout {
    _root: tempfile::TempDir,
    root: PathBuf,
    mine: PathBuf,
    other: PathBuf,
    scratch: PathBuf,
    token: PathBuf,
    secret_key: PathBuf,
    kubeconfig: PathBuf,
    ctx: ToolContext,
}

fn layout() -> Layout {
    let report = tool::confinement();
    assert!(
        report.filesystem && report.tcp && report.scopes,
        "Landlock (ABI >= 6) must be available on this machine, got: {report}"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let file = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    };
    let mine =
        file("repo-cache/trees/mine-1111/values.yaml", "replicas: 3\n").parent().unwrap().to_path_buf();
    let other =
        file("repo-cache/trees/other-2222/secret.yaml", "password: other-team\n").parent().unwrap().into();
    let token = file("var/run/secrets/kubernetes.io/serviceaccount/token", "sa-token\n");
    let secret_key = file("argocd-secret/server.secretkey", "admin-signing-key\n");
    let kubeconfig = file("home/.kube/config", "clusters: []\n");
    let work = root.join("repo-cache/render");
    let scratch = work.join("kustomize-test-0");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut ctx = ToolContext::new("web", "web", work);
    ctx.refs.insert("values".into(), mine.clone());
    ctx.timeout = Duration::from_secs(60);
    Layout { _root: dir, root, mine, other, scratch, token, secret_key, kubeconfig, ctx }
}

/// Runs `script` with `program -c` as the confined tool in the scratch directory.
fn run(l: &Layout, program: &str, script: &str, extra: &[&str]) -> Result<String, RenderError> {
    let mut args = vec!["-c".to_string(), script.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    tool::run(&l.ctx, "sh", Path::new(program), &args, &l.scratch, "apps/web", &[])
        .map(|out| String::from_utf8_lossy(&out).into_owned())
}

fn sh(l: &Layout, script: &str) -> Result<String, RenderError> {
    run(l, "/bin/sh", script, &[])
}

/// A shell builtin that prints the first line of `file` (no other program is needed, or allowed).
fn read_line(file: &Path) -> String {
    format!("IFS= read -r line < '{}' && printf '%s' \"$line\"", file.display())
}

fn assert_denied(result: Result<String, RenderError>, what: &str) {
    match result {
        Err(RenderError::Tool { message, .. }) => {
            assert!(
                message.contains("Permission denied") || message.contains("not permitted"),
                "{what}: expected a refusal, got {message}"
            )
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_render_reads_its_scratch_directory_and_its_ref_trees() {
    let l = layout();
    std::fs::write(l.scratch.join("input.yaml"), "kind: ConfigMap\n").unwrap();
    assert_eq!(sh(&l, &read_line(&l.scratch.join("input.yaml"))).unwrap(), "kind: ConfigMap");
    assert_eq!(sh(&l, &read_line(&l.mine.join("values.yaml"))).unwrap(), "replicas: 3");
    assert_eq!(sh(&l, "echo made > out.yaml && cat=$(echo ok) && echo $cat").unwrap(), "ok\n");
    assert_eq!(std::fs::read_to_string(l.scratch.join("out.yaml")).unwrap(), "made\n");
}

#[test]
fn the_service_account_token_is_unreadable() {
    let l = layout();
    assert_eq!(std::fs::read_to_string(&l.token).unwrap(), "sa-token\n", "the file is there");
    assert_denied(sh(&l, &read_line(&l.token)), "the token");
    let real = Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token");
    if real.exists() {
        assert_denied(sh(&l, &read_line(real)), "the Pod's token");
    }
}

#[test]
fn another_repos_tree_in_the_same_cache_is_unreadable() {
    let l = layout();
    assert_denied(sh(&l, &read_line(&l.other.join("secret.yaml"))), "another repo's file");
    // A glob over a folder that cannot be listed stays as written.
    let list = |dir: &Path| sh(&l, &format!("for f in '{}'/*; do printf '%s ' \"$f\"; done", dir.display()));
    assert_eq!(list(&l.mine).unwrap(), format!("{}/values.yaml ", l.mine.display()));
    assert_eq!(
        list(&l.other).unwrap(),
        format!("{}/* ", l.other.display()),
        "another repo's folder is listed"
    );
    assert_denied(
        sh(&l, &read_line(&l.root.join("repo-cache/trees/other-2222/secret.yaml"))),
        "another repo's file by its cache path",
    );
}

#[test]
fn argocd_secrets_mount_and_kubeconfigs_are_unreadable() {
    let l = layout();
    assert_denied(sh(&l, &read_line(&l.secret_key)), "argocd-secret's mount");
    assert_denied(sh(&l, &read_line(&l.kubeconfig)), "a kubeconfig");
    assert_denied(sh(&l, &read_line(Path::new("/etc/shadow"))), "/etc/shadow");
    assert_denied(sh(&l, &read_line(Path::new("/proc/1/environ"))), "another process's environment");
}

#[test]
fn a_path_in_a_user_value_grants_nothing_but_a_value_file_berth_names_is_readable() {
    let l = layout();
    let token = l.token.display().to_string();
    // `sh -c script $0 $1`: the file arrives as the value of a flag that carries user input.
    assert_denied(
        run(&l, "/bin/sh", &read_line(&l.token), &["--set", &format!("x={token}")]),
        "--set x=<file>",
    );
    assert_denied(
        run(&l, "/bin/sh", &read_line(&l.token), &["--kube-version", &token]),
        "--kube-version <file>",
    );
    let values = l.root.join("value-file.yaml");
    std::fs::write(&values, "a: 1\n").unwrap();
    let shown = values.display().to_string();
    assert_eq!(run(&l, "/bin/sh", &read_line(&values), &["--values", &shown]).unwrap(), "a: 1");
    // A positional argument may be a user value: outside the render's trees it grants nothing.
    assert_denied(run(&l, "/bin/sh", &read_line(&values), &["name", &shown]), "a positional file");
    // Even named as a value file, a token stays out of reach when it sits where tokens live.
    let real_place = Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token");
    if real_place.exists() {
        let named = real_place.display().to_string();
        assert_denied(
            run(&l, "/bin/sh", &read_line(real_place), &["--values", &named]),
            "a token as a value file",
        );
    }
}

#[test]
fn no_other_program_can_be_started() {
    let l = layout();
    for (what, script) in [
        ("cat", "exec /bin/cat /etc/hostname".to_string()),
        ("cat from PATH", "PATH=/usr/bin:/bin; cat /etc/hostname".into()),
        ("git", "PATH=/usr/bin:/bin; exec git --version".into()),
        ("a copy of the shell in the scratch directory", "exec ./copied-sh -c true".into()),
    ] {
        if what.starts_with("a copy") {
            std::fs::copy("/bin/sh", l.scratch.join("copied-sh")).unwrap();
        }
        match sh(&l, &script) {
            Err(RenderError::Tool { message, .. }) => {
                assert!(message.contains("Permission denied"), "{what}: {message}")
            }
            other => panic!("{what} started: {other:?}"),
        }
    }
}

#[test]
fn the_tool_finds_no_git_or_shell_on_its_path() {
    let l = layout();
    let path = sh(&l, "printf '%s' \"$PATH\"").unwrap();
    let entries: Vec<_> = std::fs::read_dir(&path).unwrap().collect();
    assert!(entries.is_empty(), "PATH {path} holds {entries:?}");
}

#[test]
fn writing_outside_the_scratch_directory_fails() {
    let l = layout();
    // (a path of this run's own outside the scratch directory: nothing else may have made it)
    let elsewhere = std::env::temp_dir().join(format!("berth-sandbox-write-{}", std::process::id()));
    for target in [l.mine.join("new.yaml"), l.root.join("repo-cache/render/other-scratch"), elsewhere] {
        assert_denied(sh(&l, &format!("echo x > '{}'", target.display())), &target.display().to_string());
        assert!(!target.exists(), "{} was written", target.display());
    }
    assert_denied(sh(&l, &format!("echo x >> '{}'", l.mine.join("values.yaml").display())), "appending");
    assert_eq!(std::fs::read_to_string(l.mine.join("values.yaml")).unwrap(), "replicas: 3\n");
}

#[test]
fn tcp_connects_fail_without_network_and_work_with_it() {
    let mut l = layout();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    l.ctx.network = false;
    assert_denied(run(&l, "/bin/bash", &connect, &[]), "a connect without network");
    l.ctx.network = true;
    assert_eq!(run(&l, "/bin/bash", &connect, &[]).unwrap(), "connected\n");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_ok(), "the allowed connection reached the listener");
}

#[test]
fn a_memory_hog_is_stopped_with_a_clear_error_and_berth_goes_on() {
    let l = layout();
    let started = Instant::now();
    // bash says when its allocation fails (dash just crashes).
    let err = run(&l, "/bin/bash", "x=0123456789abcdef; while :; do x=\"$x$x\"; done", &[]).unwrap_err();
    assert_eq!(
        err,
        RenderError::OutOfMemory { tool: "sh".into(), path: "apps/web".into(), limit: "1 GiB".into() }
    );
    assert_eq!(err.to_string(), "sh ran out of its 1 GiB memory limit in apps/web");
    assert!(started.elapsed() < Duration::from_secs(50), "took {:?}", started.elapsed());
    assert_eq!(sh(&l, "echo still here").unwrap(), "still here\n", "the next render runs");
}

#[test]
fn signals_to_processes_outside_the_render_are_refused() {
    let l = layout();
    // berth's test process is outside the tool's Landlock domain.
    let script = format!("kill -0 {} && echo delivered", std::process::id());
    match sh(&l, &script) {
        Err(RenderError::Tool { message, .. }) => assert!(message.contains("not permitted"), "{message}"),
        other => panic!("a signal reached berth: {other:?}"),
    }
}

/// The `helm` on PATH (`eval "$(hack/cluster env)"`); these tests never run without it.
fn helm() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("helm")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("helm is not on PATH: run `eval \"$(./hack/cluster env)\"` in /work/main before these tests")
    })
}

/// A chart in a repository folder whose one template is `template`.
fn chart(template: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("web");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("Chart.yaml"), "apiVersion: v2\nname: web\nversion: 0.1.0\n").unwrap();
    std::fs::write(dir.join("templates/cm.yaml"), template).unwrap();
    repo
}

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: \"1\"\n";

#[test]
fn a_helm_chart_that_builds_a_huge_string_stops_at_the_memory_limit() {
    assert!(tool::confinement().filesystem, "Landlock must be available: {}", tool::confinement());
    // 700 bytes of chart: a string doubled forty times (the 2.3 GiB helm child).
    let repo = chart(concat!(
        "{{- $s := \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" }}\n",
        "{{- range until 40 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  size: \"{{ len $s }}\"\n",
    ));
    let work = tempfile::tempdir().unwrap();
    let mut ctx = ToolContext::new("web", "web", work.path().into());
    ctx.helm = helm();
    let started = Instant::now();
    let err = render_helm_path(repo.path(), "web", None, &ctx).unwrap_err();
    assert_eq!(err.to_string(), "helm ran out of its 1 GiB memory limit in web");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    // The same chart without the loop renders: the limit leaves real charts alone.
    let plain = chart(CONFIG_MAP);
    let m = render_helm_path(plain.path(), "web", None, &ctx).unwrap();
    assert_eq!(m[0].object["data"]["a"], "1");
}

/// How much the confinement costs: 50 `helm template` runs of a small chart, confined through
/// `tool::run` and unconfined with the same arguments and environment.
/// `cargo test -p berth-repo --test sandbox -- --ignored --nocapture confinement_cost`
#[test]
#[ignore]
fn confinement_cost_of_50_helm_templates() {
    let repo = chart(CONFIG_MAP);
    let work = tempfile::tempdir().unwrap();
    let scratch = work.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut ctx = ToolContext::new("web", "web", work.path().into());
    ctx.helm = helm();
    // In the scratch directory, as helm.rs copies it: a folder elsewhere is not granted.
    let chart_dir = scratch.join("web");
    std::fs::create_dir_all(chart_dir.join("templates")).unwrap();
    for file in ["Chart.yaml", "templates/cm.yaml"] {
        std::fs::copy(repo.path().join("web").join(file), chart_dir.join(file)).unwrap();
    }
    let chart_dir = chart_dir.display().to_string();
    let args: Vec<String> = vec!["template".into(), "web".into(), chart_dir];
    let confined = Instant::now();
    for _ in 0..50 {
        tool::run(&ctx, "helm", &ctx.helm, &args, &scratch, "web", &[]).unwrap();
    }
    let confined = confined.elapsed();
    let home = scratch.join(".home");
    let plain = Instant::now();
    for _ in 0..50 {
        let out = std::process::Command::new(&ctx.helm)
            .args(&args)
            .current_dir(&scratch)
            .env_clear()
            .env("HOME", &home)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let plain = plain.elapsed();
    println!(
        "50 helm template runs: confined {confined:?} ({:?} each), unconfined {plain:?} ({:?} each)",
        confined / 50,
        plain / 50
    );
}

#[test]
fn udp_fails_without_network_and_works_with_it() {
    let mut l = layout();
    assert!(tool::confinement().seccomp, "seccomp must be available: {}", tool::confinement());
    // Landlock covers TCP only: a DNS query could carry data out without the seccomp filter.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let send = format!("echo leaked > /dev/udp/127.0.0.1/{port} && echo sent");
    l.ctx.network = false;
    assert_denied(run(&l, "/bin/bash", &send, &[]), "a UDP datagram without network");
    l.ctx.network = true;
    assert_eq!(run(&l, "/bin/bash", &send, &[]).unwrap(), "sent\n");
    let mut buf = [0u8; 16];
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = udp.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"leaked\n", "the allowed datagram arrived");
}

#[test]
fn a_file_over_the_size_limit_stops_the_tool() {
    let l = layout();
    // 1 MiB doubled up in the shell, appended until past the 256 MiB limit.
    let script = "x=0123456789abcdef; i=0; while [ $i -lt 16 ]; do x=\"$x$x\"; i=$((i+1)); done; \
                  i=0; while [ $i -lt 300 ]; do printf '%s' \"$x\" >> big; i=$((i+1)); done";
    let err = run(&l, "/bin/bash", script, &[]).unwrap_err();
    assert_eq!(
        err,
        RenderError::Tool {
            tool: "sh".into(),
            path: "apps/web".into(),
            message: "wrote a file over its 256 MiB limit".into()
        }
    );
    let size = std::fs::metadata(l.scratch.join("big")).unwrap().len();
    assert!(size <= 256 * 1024 * 1024, "{size} bytes written");
}
