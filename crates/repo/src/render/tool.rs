//! Running a render tool: a scratch directory of its own, a time limit (the process group is killed),
//! no network unless allowed (a proxy that refuses every connection), a bounded output, and the
//! confinement of [`super::sandbox`] (files, network, memory, CPU, processes).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use super::sandbox::{self, Access, Limits, Prepared};
use super::{RenderError, ToolContext};

/// Largest output a tool may print.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// Runs `program args` in `dir` under the context's limits and returns its standard output.
/// `path` names the source in errors.
pub fn run(
    ctx: &ToolContext,
    tool: &str,
    program: &Path,
    args: &[String],
    dir: &Path,
    path: &str,
    env: &[(String, String)],
) -> Result<Vec<u8>, RenderError> {
    let cannot = |what: &str, e: std::io::Error| RenderError::Tool {
        tool: tool.into(),
        path: path.into(),
        message: format!("cannot {what} {}: {e}", program.display()),
    };
    let program = find_program(program).map_err(|e| cannot("find", e))?;
    let mut cmd = Command::new(&program);
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A fresh, private home: no user configuration or cached credentials leak in.
    let home = dir.join(".home");
    // An empty PATH directory: even unconfined, the tool finds no git, shell or plugin to start.
    let _ = std::fs::create_dir_all(home.join("bin"));
    let _ = std::fs::create_dir_all(home.join("tmp"));
    let limits = Limits::for_timeout(ctx.timeout);
    cmd.env_clear()
        .env("PATH", home.join("bin"))
        .env("TMPDIR", home.join("tmp"))
        // Go collects harder before it reaches the memory limit instead of failing at it.
        .env("GOMEMLIMIT", format!("{}MiB", limits.memory_bytes / (1024 * 1024) * 3 / 4))
        // Go cannot read berth's cgroup from inside the sandbox: the CPUs berth may use, said here.
        .env("GOMAXPROCS", std::thread::available_parallelism().map_or(1, |n| n.get()).to_string())
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", "/dev/null");
    if !ctx.network {
        // Every HTTP(S) connection goes to a proxy that is not there: no network, a clear error.
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"] {
            cmd.env(key, "http://127.0.0.1:9");
        }
        cmd.env("NO_PROXY", "").env("no_proxy", "");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let access = Access {
        program: &program,
        write: vec![scratch_root(&ctx.work_dir, dir)],
        read: readable(ctx, dir, args),
        network: ctx.network,
    };
    let prepared = Arc::new(Prepared::new(&access, &limits).map_err(|e| cannot("confine", e))?);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let prepared = Arc::clone(&prepared);
        // SAFETY: `apply` makes only async-signal-safe syscalls and does not allocate.
        unsafe {
            cmd.pre_exec(move || prepared.apply());
        }
    }
    let spawned = cmd.spawn();
    // The ruleset's fd closes here: the child holds its own copy until exec.
    drop(cmd);
    drop(prepared);
    let mut child = spawned.map_err(|e| cannot("start", e))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stdout).take(MAX_OUTPUT_BYTES as u64 + 1).read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(1024 * 1024).read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) =
            child.try_wait().map_err(|e| RenderError::Io { file: path.into(), message: e.to_string() })?
        {
            break status;
        }
        if started.elapsed() > ctx.timeout {
            kill_group(&mut child);
            return Err(RenderError::Timeout {
                tool: tool.into(),
                path: path.into(),
                seconds: ctx.timeout.as_secs(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if stdout.len() > MAX_OUTPUT_BYTES {
        return Err(RenderError::Tool {
            tool: tool.into(),
            path: path.into(),
            message: format!("printed more than {MAX_OUTPUT_BYTES} bytes"),
        });
    }
    if !status.success() {
        let message = String::from_utf8_lossy(&stderr).trim().to_string();
        return Err(over_limit(tool, path, &status, &message, &limits).unwrap_or(RenderError::Tool {
            tool: tool.into(),
            path: path.into(),
            message,
        }));
    }
    Ok(stdout)
}

/// The error for a tool stopped by one of its limits, `None` when it failed for another reason.
fn over_limit(
    tool: &str,
    path: &str,
    status: &std::process::ExitStatus,
    stderr: &str,
    limits: &Limits,
) -> Option<RenderError> {
    use std::os::unix::process::ExitStatusExt;
    let mib = |bytes: u64| {
        if bytes.is_multiple_of(1024 * 1024 * 1024) {
            format!("{} GiB", bytes / (1024 * 1024 * 1024))
        } else {
            format!("{} MiB", bytes / (1024 * 1024))
        }
    };
    let message = match status.signal() {
        Some(libc::SIGXCPU) => format!("used up its {} s CPU limit", limits.cpu_seconds),
        Some(libc::SIGXFSZ) => format!("wrote a file over its {} limit", mib(limits.file_size_bytes)),
        _ => {
            let lower = stderr.to_ascii_lowercase();
            // Go: "fatal error: runtime: out of memory"; C programs: ENOMEM's text or their allocator's.
            let oom = ["out of memory", "cannot allocate", "out of space", "memory exhausted"];
            if !oom.iter().any(|needle| lower.contains(needle)) {
                return None;
            }
            return Some(RenderError::OutOfMemory {
                tool: tool.into(),
                path: path.into(),
                limit: mib(limits.memory_bytes),
            });
        }
    };
    Some(RenderError::Tool { tool: tool.into(), path: path.into(), message })
}

/// The program as a canonical path: what Landlock lets run. A bare name is looked up on berth's PATH.
fn find_program(program: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.components().count() > 1 || program.is_absolute() {
        return program.canonicalize();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if let Ok(meta) = candidate.metadata()
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return candidate.canonicalize();
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::NotFound, "not found on PATH"))
}

/// The render's scratch directory that holds `dir`: the folder directly under the work directory (or
/// under `helm/scratch`), so that a tool run in a subfolder still reaches its sibling inputs.
fn scratch_root(work_dir: &Path, dir: &Path) -> PathBuf {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Ok(work) = work_dir.canonicalize() else { return dir };
    let Ok(rel) = dir.strip_prefix(&work) else { return dir };
    let mut parts = rel.components();
    let mut root = work.clone();
    match parts.next() {
        Some(first) if first.as_os_str() == "helm" => {
            root.push(first);
            match (parts.next(), parts.next()) {
                (Some(scratch), Some(one)) if scratch.as_os_str() == "scratch" => {
                    root.push(scratch);
                    root.push(one);
                    root
                }
                _ => dir,
            }
        }
        Some(first) => {
            root.push(first);
            root
        }
        None => dir,
    }
}

/// Flags of the tools' command lines whose value is a file berth chose (checked to be inside the
/// render's trees); values of every other flag may come from a user and grant nothing.
const PATH_FLAGS: &[&str] = &["--values", "-f"];
/// `--set-file name=path`: the path after `=` is berth's.
const FILE_PARAMETER_FLAG: &str = "--set-file";
/// Flags that take no value, as berth passes them.
const SWITCHES: &[&str] = &[
    "--include-crds",
    "--skip-tests",
    "--skip-schema-validation",
    "--untar",
    "--pass-credentials",
    "--plain-http",
    "--insecure-skip-tls-verify",
    "--enable-helm",
    "--debug",
];

/// What the tool may read besides its scratch directory: the `ref` sources, and the paths berth put
/// into its arguments: positional ones inside the work directory or a `ref` source (the chart or
/// kustomization copied into the scratch directory, a cached chart), and the files of `--values` and
/// `--set-file` (value files in the source's tree); never a place where credentials live.
fn readable(ctx: &ToolContext, dir: &Path, args: &[String]) -> Vec<PathBuf> {
    let canonical = |p: &Path| p.canonicalize().ok();
    let trees: Vec<PathBuf> = ctx.refs.values().filter_map(|p| canonical(p)).collect();
    let mut roots = trees.clone();
    roots.extend(canonical(&ctx.work_dir));
    roots.extend(canonical(dir));
    let mut out = trees;
    // A file berth resolved as a value file may lie anywhere in the source's tree; anything else
    // (positional arguments may carry user values) only inside the render's own trees.
    let mut grant = |value: &str, value_file: bool| {
        let candidate = Path::new(value);
        if !candidate.is_absolute() {
            return;
        }
        let Some(real) = canonical(candidate) else { return };
        let in_roots = roots.iter().any(|r| real.starts_with(r));
        if (in_roots || (value_file && real.is_file())) && !sensitive(&real) && !out.contains(&real) {
            out.push(real);
        }
    };
    let file_parameter = |value: &str| value.split_once('=').map_or("", |(_, p)| p).to_string();
    let mut iter = args.iter();
    let mut options_end = false;
    while let Some(arg) = iter.next() {
        if options_end || !arg.starts_with('-') {
            grant(arg, false);
        } else if arg == "--" {
            options_end = true;
        } else if let Some((flag, value)) = arg.split_once('=') {
            if PATH_FLAGS.contains(&flag) {
                grant(value, true);
            } else if flag == FILE_PARAMETER_FLAG {
                grant(&file_parameter(value), true);
            }
        } else if !SWITCHES.contains(&arg.as_str()) {
            let value = iter.next().map_or("", |v| v.as_str());
            if PATH_FLAGS.contains(&arg.as_str()) {
                grant(value, true);
            } else if arg == FILE_PARAMETER_FLAG {
                grant(&file_parameter(value), true);
            }
        }
    }
    out
}

/// Places no render reads, whatever its arguments say: credentials, tokens, kernel files, the
/// configuration and credentials in berth's home (its cache may live there, so not the whole home).
fn sensitive(path: &Path) -> bool {
    let system =
        ["/var/run/secrets", "/run/secrets", "/proc", "/sys", "/dev", "/etc", "/root/.kube", "/boot"];
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute() && h != Path::new("/"));
    let in_home = |dir: &str| home.as_ref().is_some_and(|h| path.starts_with(h.join(dir)));
    system.iter().any(|p| path.starts_with(p))
        || [".kube", ".config", ".ssh", ".docker", ".git-credentials", ".netrc"].iter().any(|d| in_home(d))
        || home.as_deref() == Some(path)
        || path == Path::new("/")
        || path.file_name().is_some_and(|n| n == "kubeconfig")
}

/// The confinement this machine gives render tools; `berth run` logs it once at start.
pub fn confinement() -> sandbox::ConfinementReport {
    sandbox::confinement()
}

fn kill_group(child: &mut std::process::Child) {
    {
        // The tool may have started children (helm plugins, git): the whole group goes.
        let _ = Command::new("kill").args(["-9", "--", &format!("-{}", child.id())]).status();
    }
    let _ = child.kill();
    let _ = child.wait();
}
