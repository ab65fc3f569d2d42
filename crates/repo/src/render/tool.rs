//! Running a render tool: a scratch directory of its own, a time limit (the process group is killed),
//! no network unless allowed (a proxy that refuses every connection), a bounded output.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

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
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A fresh, private home: no user configuration or cached credentials leak in.
    let home = dir.join(".home");
    let _ = std::fs::create_dir_all(&home);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
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
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| RenderError::Tool {
        tool: tool.into(),
        path: path.into(),
        message: format!("cannot start {}: {e}", program.display()),
    })?;
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
        return Err(RenderError::Tool { tool: tool.into(), path: path.into(), message });
    }
    Ok(stdout)
}

fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        // The tool may have started children (helm plugins, git): the whole group goes.
        let _ = Command::new("kill").args(["-9", "--", &format!("-{}", child.id())]).status();
    }
    let _ = child.kill();
    let _ = child.wait();
}
