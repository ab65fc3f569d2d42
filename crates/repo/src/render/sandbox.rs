//! The confinement of every render tool's process (helm, kustomize), so that a tool made to run code
//! still reaches nothing but its own render:
//!
//! - **Landlock** (filesystem): the tool reads the system files a static binary needs, the trees of its
//!   render (its scratch directory, the `ref` sources, the paths berth names in its arguments) and
//!   writes only its scratch directory. It executes only its own binary. Berth's cache of other repos,
//!   the ServiceAccount token, kubeconfigs and berth's home are out of reach.
//! - **Landlock** (network, ABI ≥ 4): no TCP connect unless the render may use the network; never bind.
//! - **Landlock** (scopes, ABI ≥ 6): no abstract unix sockets or signals outside the tool's own processes.
//! - **rlimits**: memory (data and address space), CPU seconds, file size, open files, processes, no core.
//! - **seccomp**: no debugging of other processes, namespaces, mounts, kernel modules, BPF, keyrings,
//!   io_uring or userfaultfd; without network no socket but unix ones (Landlock covers TCP only, so
//!   this also stops UDP, e.g. DNS exfiltration).
//! - `PR_SET_NO_NEW_PRIVS` (no setuid gain) and death with berth (`PR_SET_PDEATHSIG`).
//!
//! What this kernel lacks is reported once as a warning and by [`confinement`], never skipped silently.
//! The ruleset is built in the parent; the child (after `fork`) only makes async-signal-safe syscalls.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Default memory limit of one tool process: far above what a real chart or kustomization needs
/// (the repo's test renders peak near 60 MiB), far below what hurts the node.
pub const DEFAULT_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest file a tool may write (a pulled chart archive, an unpacked file).
pub const MAX_FILE_SIZE_BYTES: u64 = 256 * 1024 * 1024;
/// Open files per tool process.
pub const MAX_OPEN_FILES: u64 = 1024;
/// Processes (threads included) of berth's user while a tool runs; only effective when not root.
pub const MAX_PROCESSES: u64 = 4096;

/// The limits a tool process gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Data segment and anonymous memory (`RLIMIT_DATA`); the address space gets headroom above it.
    pub memory_bytes: u64,
    /// CPU seconds over all threads (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
    pub processes: u64,
}

impl Limits {
    /// The limits for a tool with this wall-clock timeout: CPU may use two cores for the whole time.
    pub fn for_timeout(timeout: Duration) -> Self {
        Limits {
            memory_bytes: memory_limit(),
            cpu_seconds: timeout.as_secs().saturating_mul(2).max(10),
            file_size_bytes: MAX_FILE_SIZE_BYTES,
            open_files: MAX_OPEN_FILES,
            processes: MAX_PROCESSES,
        }
    }

    /// Address space: Go reserves far more than it touches, so the hard cap is `RLIMIT_DATA`.
    fn address_space_bytes(&self) -> u64 {
        self.memory_bytes.saturating_mul(4).max(4 * 1024 * 1024 * 1024)
    }
}

/// The memory limit: `BERTH_RENDER_MEMORY_MIB` when berth was started with it, else 1 GiB.
pub fn memory_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("BERTH_RENDER_MEMORY_MIB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|mib| *mib >= 64)
            .map_or(DEFAULT_MEMORY_BYTES, |mib| mib * 1024 * 1024)
    })
}

/// Which confinement layers render tools get on this machine; `berth run` logs it at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfinementReport {
    /// The kernel's Landlock ABI version, `None` when Landlock is unavailable (or disabled).
    pub landlock_abi: Option<u32>,
    /// Reads, writes and executions limited to the render's files (Landlock ABI ≥ 1).
    pub filesystem: bool,
    /// TCP connect denied unless the render may use the network, bind always (Landlock ABI ≥ 4).
    pub tcp: bool,
    /// Abstract unix sockets and signals scoped to the tool (Landlock ABI ≥ 6).
    pub scopes: bool,
    /// The seccomp filter (system calls a render never needs; no UDP or raw sockets without network).
    pub seccomp: bool,
    /// `RLIMIT_NPROC` counts against berth's user; root (or `CAP_SYS_RESOURCE`) ignores it.
    pub process_limit: bool,
    /// The default limits (the CPU limit follows each render's timeout).
    pub limits: Limits,
}

impl ConfinementReport {
    /// The layers that are missing on this machine, in words; empty when all are in place.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.filesystem {
            out.push("filesystem confinement (Landlock unavailable: tools can read berth's cache, credentials and ServiceAccount token)");
        }
        if !self.tcp {
            out.push(
                "network confinement (Landlock ABI < 4: only the closed proxy keeps tools off the network)",
            );
        }
        if !self.scopes {
            out.push("socket and signal scoping (Landlock ABI < 6)");
        }
        if !self.seccomp {
            out.push(
                "the seccomp filter (unavailable: tools may use UDP without network, namespaces, ptrace)",
            );
        }
        if !self.process_limit {
            out.push("process-count limit (RLIMIT_NPROC is ignored for root)");
        }
        out
    }
}

impl fmt::Display for ConfinementReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.landlock_abi {
            Some(abi) => write!(f, "landlock ABI {abi}")?,
            None => write!(f, "no landlock")?,
        }
        write!(
            f,
            " (filesystem: {}, tcp: {}, scopes: {}), seccomp: {}, no_new_privs, memory {} MiB, \
             files {} MiB, open files {}, processes {}",
            on(self.filesystem),
            on(self.tcp),
            on(self.scopes),
            on(self.seccomp),
            self.limits.memory_bytes / (1024 * 1024),
            self.limits.file_size_bytes / (1024 * 1024),
            self.limits.open_files,
            if self.process_limit { self.limits.processes.to_string() } else { "unlimited (root)".into() },
        )
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "OFF" }
}

/// The confinement render tools get on this machine (probed once).
pub fn confinement() -> ConfinementReport {
    static REPORT: OnceLock<ConfinementReport> = OnceLock::new();
    REPORT
        .get_or_init(|| {
            let abi = landlock_abi();
            ConfinementReport {
                landlock_abi: abi,
                filesystem: abi.is_some_and(|v| v >= 1),
                tcp: abi.is_some_and(|v| v >= 4),
                scopes: abi.is_some_and(|v| v >= 6),
                seccomp: seccomp::available(),
                // SAFETY: geteuid has no preconditions.
                process_limit: unsafe { libc::geteuid() } != 0,
                limits: Limits::for_timeout(Duration::from_secs(90)),
            }
        })
        .clone()
}

/// Warns once per process about missing layers (called on the first tool run).
fn warn_once(report: &ConfinementReport) {
    static WARNED: OnceLock<()> = OnceLock::new();
    WARNED.get_or_init(|| {
        for layer in report.missing() {
            tracing::warn!(missing = layer, "render tools run without {layer}");
        }
    });
}

// The Landlock UAPI (linux/landlock.h); the syscall numbers are the same on every architecture.
const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
const SYS_LANDLOCK_ADD_RULE: libc::c_long = 445;
const SYS_LANDLOCK_RESTRICT_SELF: libc::c_long = 446;
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;

const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;
/// Rights that apply to a file (the rest only to directories).
const FS_FILE_RIGHTS: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;
const READ: u64 = FS_READ_FILE | FS_READ_DIR;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

fn landlock_abi() -> Option<u32> {
    // SAFETY: the version query reads no memory.
    let v = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}

/// Every filesystem right this ABI knows.
fn handled_fs(abi: u32) -> u64 {
    let mut rights = (1 << 13) - 1; // ABI 1: EXECUTE … MAKE_SYM
    if abi >= 2 {
        rights |= 1 << 13; // REFER
    }
    if abi >= 3 {
        rights |= FS_TRUNCATE;
    }
    if abi >= 5 {
        rights |= FS_IOCTL_DEV;
    }
    rights
}

/// What one tool run may touch, besides the system files every run gets.
pub struct Access<'a> {
    /// The tool's binary (the one program it may execute).
    pub program: &'a Path,
    /// Read, write, create and delete (the render's scratch directory).
    pub write: Vec<PathBuf>,
    /// Read only (source trees, value files, cached charts).
    pub read: Vec<PathBuf>,
    /// Whether TCP connections are allowed.
    pub network: bool,
}

/// System files a static Go binary (and a dynamically linked test program) reads.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/ld.so.cache",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    // Go's runtime sizes huge pages from it.
    "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
];

/// Prepared confinement for one child: the ruleset is built here, in the parent; [`Prepared::apply`]
/// runs in the child between `fork` and `exec`.
pub(crate) struct Prepared {
    ruleset: Option<OwnedFd>,
    /// The seccomp program; `filter` points into it.
    _program: Vec<seccomp::Instruction>,
    filter: Option<seccomp::Program>,
    limits: [(i32, u64, u64); 7],
}

impl Prepared {
    /// Builds the Landlock ruleset for `access` and the rlimits for `limits`.
    pub(crate) fn new(access: &Access, limits: &Limits) -> std::io::Result<Prepared> {
        let report = confinement();
        warn_once(&report);
        let ruleset = match report.landlock_abi {
            Some(abi) => Some(ruleset(abi, access)?),
            None => None,
        };
        let program = if report.seccomp { seccomp::program(access.network) } else { Vec::new() };
        let filter = report.seccomp.then(|| seccomp::fprog(&program));
        let memory = limits.memory_bytes;
        let address = limits.address_space_bytes();
        let cpu = limits.cpu_seconds;
        Ok(Prepared {
            ruleset,
            _program: program,
            filter,
            limits: [
                (libc::RLIMIT_DATA as i32, memory, memory),
                (libc::RLIMIT_AS as i32, address, address),
                // SIGXCPU at the soft limit, SIGKILL at the hard one.
                (libc::RLIMIT_CPU as i32, cpu, cpu + 5),
                (libc::RLIMIT_FSIZE as i32, limits.file_size_bytes, limits.file_size_bytes),
                (libc::RLIMIT_NOFILE as i32, limits.open_files, limits.open_files),
                (libc::RLIMIT_CORE as i32, 0, 0),
                (libc::RLIMIT_NPROC as i32, limits.processes, limits.processes),
            ],
        })
    }

    /// Confines the calling process. Runs in the child after `fork`: only async-signal-safe
    /// syscalls, no allocation (the error is a plain OS error code).
    pub(crate) fn apply(&self) -> std::io::Result<()> {
        let fail = |_| Err(std::io::Error::last_os_error());
        for (resource, soft, hard) in self.limits {
            let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes the struct we pass.
            if unsafe { libc::getrlimit(resource as _, &mut current) } != 0 {
                return fail(());
            }
            // Only lowering: an unprivileged berth cannot raise a hard limit it was given.
            let hard = hard.min(current.rlim_max);
            let limit = libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard };
            // SAFETY: setrlimit reads the struct we pass.
            if unsafe { libc::setrlimit(resource as _, &limit) } != 0 {
                return fail(());
            }
        }
        // SAFETY: prctl with integer arguments.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return fail(());
            }
            // The tool does not outlive berth.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        }
        if let Some(fd) = &self.ruleset {
            // SAFETY: the fd is a Landlock ruleset, kept open by the parent until spawn returns.
            if unsafe { libc::syscall(SYS_LANDLOCK_RESTRICT_SELF, fd.as_raw_fd(), 0u32) } != 0 {
                return fail(());
            }
        }
        if let Some(filter) = &self.filter {
            // SAFETY: the program is alive (owned by self); last, so that it filters nothing above.
            if unsafe {
                libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, filter as *const _, 0, 0)
            } != 0
            {
                return fail(());
            }
        }
        Ok(())
    }
}

// SAFETY: the program pointer refers to `_program`, owned by the same value and never changed.
unsafe impl Send for Prepared {}
unsafe impl Sync for Prepared {}

/// A seccomp-BPF filter for x86_64 and aarch64 (other architectures report it missing).
mod seccomp {
    pub type Instruction = libc::sock_filter;
    pub type Program = libc::sock_fprog;

    /// BPF_LD | BPF_W | BPF_ABS.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x05 | 0x10;
    const JGE_K: u16 = 0x05 | 0x30;
    const JSET_K: u16 = 0x05 | 0x40;
    const RET_K: u16 = 0x06;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    // Offsets in struct seccomp_data.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const ARG0: u32 = 16;

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: Option<u32> = Some(0xc000_003e);
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: Option<u32> = Some(0xc000_00b7);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const AUDIT_ARCH: Option<u32> = None;

    /// System calls no render needs, refused with EPERM.
    const DENIED: &[libc::c_long] = &[
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_open_by_handle_at,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    /// `clone` flags that make namespaces.
    const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP) as u32;

    fn stmt(code: u16, k: u32) -> Instruction {
        Instruction { code, jt: 0, jf: 0, k }
    }

    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
        Instruction { code, jt, jf, k }
    }

    /// Whether this kernel takes seccomp filters (and this build knows the architecture).
    pub fn available() -> bool {
        let errno_action = RET_ERRNO;
        // SAFETY: SECCOMP_GET_ACTION_AVAIL reads the u32 we pass.
        AUDIT_ARCH.is_some()
            && unsafe { libc::syscall(libc::SYS_seccomp, 2u32, 0u32, &errno_action as *const u32) } == 0
    }

    /// The filter: a foreign architecture is killed, [`DENIED`] calls and namespace-making `clone`
    /// fail with EPERM, `clone3` reports ENOSYS (callers fall back to `clone`, whose flags are
    /// visible), and without network `socket` works for unix sockets only (EACCES otherwise).
    pub fn program(network: bool) -> Vec<Instruction> {
        let errno = |e: i32| stmt(RET_K, RET_ERRNO | (e as u32 & 0xffff));
        let mut p = vec![
            stmt(LD_W_ABS, ARCH),
            jump(JEQ_K, AUDIT_ARCH.unwrap_or(0), 1, 0),
            stmt(RET_K, RET_KILL_PROCESS),
            stmt(LD_W_ABS, NR),
            // x32 system calls on x86_64.
            jump(JGE_K, 0x4000_0000, 0, 1),
            errno(libc::EPERM),
        ];
        for nr in DENIED {
            p.push(jump(JEQ_K, *nr as u32, 0, 1));
            p.push(errno(libc::EPERM));
        }
        p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
        p.push(errno(libc::ENOSYS));
        // clone: flags are the first argument on x86_64 and aarch64.
        p.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 4));
        p.push(stmt(LD_W_ABS, ARG0));
        p.push(jump(JSET_K, NAMESPACE_FLAGS, 0, 1));
        p.push(errno(libc::EPERM));
        p.push(stmt(RET_K, RET_ALLOW));
        if !network {
            p.push(jump(JEQ_K, libc::SYS_socket as u32, 0, 4));
            p.push(stmt(LD_W_ABS, ARG0));
            p.push(jump(JEQ_K, libc::AF_UNIX as u32, 0, 1));
            p.push(stmt(RET_K, RET_ALLOW));
            p.push(errno(libc::EACCES));
        }
        p.push(stmt(RET_K, RET_ALLOW));
        p
    }

    /// The `sock_fprog` for `instructions` (which must outlive it).
    pub fn fprog(instructions: &[Instruction]) -> Program {
        Program { len: instructions.len() as u16, filter: instructions.as_ptr() as *mut Instruction }
    }
}

/// The Landlock ruleset of one run (its fd is close-on-exec).
fn ruleset(abi: u32, access: &Access) -> std::io::Result<OwnedFd> {
    let fs = handled_fs(abi);
    let attr = RulesetAttr {
        handled_access_fs: fs,
        handled_access_net: match (abi >= 4, access.network) {
            (false, _) => 0,
            (true, true) => NET_BIND_TCP,
            (true, false) => NET_BIND_TCP | NET_CONNECT_TCP,
        },
        scoped: if abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 },
    };
    // Older kernels take the prefix of the struct they know.
    let size = if abi >= 6 {
        std::mem::size_of::<RulesetAttr>()
    } else if abi >= 4 {
        16
    } else {
        8
    };
    // SAFETY: attr lives for the call; size is within it.
    let fd = unsafe { libc::syscall(SYS_LANDLOCK_CREATE_RULESET, &attr as *const RulesetAttr, size, 0u32) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd owned by nobody else.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let write_rights = fs & !FS_EXECUTE & !FS_IOCTL_DEV;
    for dir in SYSTEM_READ {
        allow(&ruleset, Path::new(dir), READ & fs, false)?;
    }
    allow(&ruleset, Path::new("/dev/null"), FS_READ_FILE | FS_WRITE_FILE | (fs & FS_TRUNCATE), false)?;
    let program = access.program;
    allow(&ruleset, program, FS_EXECUTE | FS_READ_FILE, true)?;
    for interpreter in interpreters(program) {
        allow(&ruleset, &interpreter, FS_EXECUTE | FS_READ_FILE, true)?;
    }
    for dir in &access.write {
        allow(&ruleset, dir, write_rights, true)?;
    }
    for path in &access.read {
        allow(&ruleset, path, READ & fs, true)?;
    }
    Ok(ruleset)
}

/// Adds a rule for `path`; a missing optional path is skipped, a missing required one is an error.
fn allow(ruleset: &OwnedFd, path: &Path, rights: u64, required: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(false);
    let rule = PathBeneathAttr {
        allowed_access: if is_dir { rights } else { rights & FS_FILE_RIGHTS },
        parent_fd: file.as_raw_fd(),
    };
    // SAFETY: rule lives for the call, both fds are open.
    let rc = unsafe {
        libc::syscall(
            SYS_LANDLOCK_ADD_RULE,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &rule as *const PathBeneathAttr,
            0u32,
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("landlock rule for {}: {e}", path.display())));
    }
    Ok(())
}

/// The programs the kernel runs to start `program`: a script's `#!` interpreter and an ELF's loader
/// (a static binary such as helm or kustomize has neither).
fn interpreters(program: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut current = program.to_path_buf();
    for _ in 0..4 {
        let Ok(head) = read_head(&current) else { break };
        let next = if let Some(rest) = head.strip_prefix(b"#!") {
            let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
            let word = line.split(|b| *b == b' ' || *b == b'\t').find(|w| !w.is_empty());
            word.map(|w| PathBuf::from(std::ffi::OsStr::from_bytes(w)))
        } else {
            elf_interpreter(&current)
        };
        match next {
            Some(next) if !out.contains(&next) => {
                out.push(next.clone());
                current = next;
            }
            _ => break,
        }
    }
    out
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = vec![0; 256];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    head.truncate(n);
    Ok(head)
}

/// The `PT_INTERP` of a 64-bit little-endian ELF file.
fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 64];
    file.read_exact(&mut header).ok()?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as u64;
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let (phoff, phentsize, phnum) = (u64_at(&header, 32), u16_at(&header, 54), u16_at(&header, 56));
    if phentsize < 56 || phnum > 256 {
        return None;
    }
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        file.seek(SeekFrom::Start(phoff + i * phentsize)).ok()?;
        file.read_exact(&mut ph).ok()?;
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 3 {
            let (offset, size) = (u64_at(&ph, 8), u64_at(&ph, 32));
            if size == 0 || size > 4096 {
                return None;
            }
            let mut name = vec![0u8; size as usize];
            file.seek(SeekFrom::Start(offset)).ok()?;
            file.read_exact(&mut name).ok()?;
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            return Some(PathBuf::from(std::ffi::OsStr::from_bytes(&name[..end])));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_program_needs_its_loader_and_a_script_its_shell_too() {
        let sh = interpreters(Path::new("/bin/sh"));
        assert!(sh.iter().any(|p| p.to_string_lossy().contains("ld-")), "{sh:?}");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tool");
        std::fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
        let chain = interpreters(&script);
        assert_eq!(chain[0], Path::new("/bin/sh"));
        assert!(chain.len() >= 2, "{chain:?}");
    }

    #[test]
    fn every_seccomp_jump_lands_inside_the_program_and_it_ends_in_a_return() {
        for network in [false, true] {
            let program = seccomp::program(network);
            for (i, ins) in program.iter().enumerate() {
                if ins.code & 0x07 == 0x05 {
                    let furthest = i + 1 + usize::from(ins.jt.max(ins.jf));
                    assert!(furthest < program.len(), "instruction {i} jumps out (network {network})");
                }
            }
            assert_eq!(program.last().map(|ins| ins.code), Some(0x06));
        }
    }

    #[test]
    fn the_report_names_what_is_missing() {
        let report = ConfinementReport {
            landlock_abi: Some(3),
            filesystem: true,
            tcp: false,
            scopes: false,
            seccomp: true,
            process_limit: true,
            limits: Limits::for_timeout(Duration::from_secs(90)),
        };
        assert_eq!(report.missing().len(), 2);
        assert!(report.to_string().contains("tcp: OFF"), "{report}");
    }
}
