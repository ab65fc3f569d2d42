//! Sync windows: the times an AppProject's `spec.syncWindows` let its applications sync, as Argo CD
//! documents them.
//!
//! A window is `allow` or `deny`; it starts at each time its cron `schedule` names (on the clock of its
//! `timeZone`, UTC by default) and lasts `duration`. It applies to an application its `applications`
//! (names), `namespaces` (destination namespace) or `clusters` (destination server or name) select, by
//! globs; any one selecting is enough, or with `andOperator` every list given must select it. Then:
//!
//! - no window applies: every sync may run;
//! - an active deny window blocks syncs (deny wins over an active allow window);
//! - when allow windows apply, syncs run only while one of them is active;
//! - `manualSync: true` lets manual syncs through: past active deny windows when all of them have it,
//!   outside the allow windows when all of those have it. Automatic syncs (and self-heal) never pass.
//! - `syncOverrun: true` (Argo CD 3.x) lets a sync already under way go on where a new one could not
//!   start: one that the windows let start goes on while every active deny window has it and, outside all
//!   allow windows, every allow window has it. So a deny window with it stops new syncs but not one that
//!   started before it opened; an allow window with it lets a sync that started in it finish after it
//!   closes. A deny window without it holds any sync under way, as before.
//!
//! A window that does not parse blocks every sync of the applications it selects, manual ones too: a
//! change freeze fails closed. This module is pure: the controller, the API server and the CLI read the
//! same verdict from it.
//!
//! ```text
//! let verdict = windows::state(&project.spec.sync_windows, &app, Timestamp::now());
//! if !verdict.can_sync_auto { /* AutoSync::Blocked(verdict.reason) */ }
//! if verdict.refusal(manual).is_some() && !verdict.runs_on(&running) { /* hold it, Running */ }
//! ```

mod cron;
pub(crate) mod duration;

pub use cron::Schedule;

use berth_api::Application;
use berth_api::application::OperationState;
use berth_api::codes::OperationPhase;
use berth_api::project::SyncWindow;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// The message Argo CD refuses a sync with while a window blocks it (the API answers it as
/// PermissionDenied).
pub const BLOCKED: &str = "cannot sync: blocked by sync window";

/// Whether a window lets syncs run or stops them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Allow,
    Deny,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Allow => "allow",
            Kind::Deny => "deny",
        }
    }
}

/// A window whose fields all parse.
#[derive(Clone, Debug)]
pub struct Window {
    /// Its place in `spec.syncWindows` (the ID `berth proj windows` and Argo CD's CLI use).
    pub index: usize,
    pub kind: Kind,
    pub schedule: Schedule,
    pub duration: SignedDuration,
    /// The clock the schedule is read on: a `CRON_TZ=` prefix, else `timeZone`, else UTC.
    pub time_zone: TimeZone,
    pub manual_sync: bool,
    /// `syncOverrun`: a sync under way may go on past this window (see the module docs).
    pub sync_overrun: bool,
}

/// Why a window does not parse: which window, which field, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sync window {index}: {field}: {message}")]
pub struct WindowError {
    pub index: usize,
    /// The field as the AppProject spells it (`schedule`, `duration`, `timeZone` …).
    pub field: &'static str,
    pub message: String,
}

impl Window {
    /// Parses the window at `index` of `spec.syncWindows`.
    pub fn parse(index: usize, spec: &SyncWindow) -> Result<Window, WindowError> {
        let error = |field: &'static str, message: String| WindowError { index, field, message };
        let kind = match spec.kind.as_deref() {
            Some("allow") => Kind::Allow,
            Some("deny") => Kind::Deny,
            Some(other) => return Err(error("kind", format!("'{other}' is neither allow nor deny"))),
            None => return Err(error("kind", "missing: allow or deny".into())),
        };
        let schedule = Schedule::parse(spec.schedule.as_deref().unwrap_or_default())
            .map_err(|why| error("schedule", why))?;
        let duration = duration::parse(spec.duration.as_deref().unwrap_or_default())
            .map_err(|why| error("duration", why))?;
        if duration.is_negative() {
            return Err(error(
                "duration",
                format!("'{}' is negative", spec.duration.as_deref().unwrap_or_default()),
            ));
        }
        let time_zone = match schedule.zone() {
            Some(name) => zone(name).map_err(|why| error("schedule", why))?,
            None => {
                zone(spec.time_zone.as_deref().unwrap_or_default()).map_err(|why| error("timeZone", why))?
            }
        };
        Ok(Window {
            index,
            kind,
            schedule,
            duration,
            time_zone,
            manual_sync: spec.manual_sync.unwrap_or(false),
            sync_overrun: spec.sync_overrun.unwrap_or(false),
        })
    }

    /// Whether the window is open at `now`: it started at most `duration` ago (a start at `now` counts, its
    /// end does not).
    pub fn is_active(&self, now: Timestamp) -> bool {
        if self.duration.is_zero() {
            return false;
        }
        // A duration reaching before the earliest timestamp: any start up to now is within it.
        let from = now.checked_sub(self.duration).unwrap_or(Timestamp::MIN);
        self.schedule.next_start(from, &self.time_zone).is_some_and(|start| start <= now)
    }
}

/// The zone a window names: empty is UTC, `Local` the system's, anything else an IANA name.
fn zone(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        name => TimeZone::get(name).map_err(|_| format!("unknown time zone '{name}' (use an IANA name)")),
    }
}

/// Whether the window applies to `app`: by its name, its destination namespace, or its destination cluster
/// (server or name); one list selecting it is enough, or with `andOperator` every list given. A window with
/// no list selects nothing.
pub fn selects(window: &SyncWindow, app: &Application) -> bool {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let dest = &app.spec.destination;
    let namespace = dest.namespace.as_deref().unwrap_or_default();
    let server = dest.server.as_deref().unwrap_or_default();
    let cluster = dest.name.as_deref().unwrap_or_default();
    let any = |patterns: &[String], matches: &dyn Fn(&str) -> bool| {
        (!patterns.is_empty()).then(|| patterns.iter().any(|p| matches(p)))
    };
    let verdicts = [
        any(&window.applications, &|p| crate::project::glob_match(p, name, false)),
        any(&window.namespaces, &|p| crate::project::glob_match(p, namespace, false)),
        any(&window.clusters, &|p| {
            (!server.is_empty() && crate::project::glob_match(p, server, false))
                || (!cluster.is_empty() && crate::project::glob_match(p, cluster, false))
        }),
    ];
    let mut given = verdicts.into_iter().flatten().peekable();
    if window.and_operator.unwrap_or(false) {
        given.peek().is_some() && given.all(|selected| selected)
    } else {
        given.any(|selected| selected)
    }
}

/// What a project's windows say about one application now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowState {
    /// The indexes (in `spec.syncWindows`) of the windows that apply to the application.
    pub assigned: Vec<usize>,
    /// Of those, the ones open now.
    pub active: Vec<usize>,
    /// Whether an automatic sync (or self-heal) may start now.
    pub can_sync_auto: bool,
    /// Whether a manual sync may start now.
    pub can_sync_manual: bool,
    /// Why automatic syncs are blocked, naming the windows (`Some` exactly when `can_sync_auto` is false;
    /// it holds for manual syncs too when those are blocked).
    pub reason: Option<String>,
    /// The start (`startedAt`) of the sync under way in the application's status when the windows block a
    /// new one of its kind now but `syncOverrun` lets this one go on ([`may_run_on`]).
    pub overrunning: Option<Timestamp>,
}

impl WindowState {
    /// Whether a sync started by a person (`manual`) or by berth may start now.
    pub fn can_sync(&self, manual: bool) -> bool {
        if manual { self.can_sync_manual } else { self.can_sync_auto }
    }

    /// Whether `running`, the sync under way, goes on past the windows that block a new one of its kind:
    /// it is the one [`state`] found in the application's status and `syncOverrun` lets it run on. The
    /// controller holds a running sync only when [`WindowState::refusal`] refuses its kind and this is
    /// false.
    pub fn runs_on(&self, running: &OperationState) -> bool {
        self.overrunning.is_some_and(|started| started == running.started_at.0)
    }

    /// The refusal of a sync of that kind, as Argo CD words it and with the windows that block it; `None`
    /// when the sync may start.
    pub fn refusal(&self, manual: bool) -> Option<String> {
        if self.can_sync(manual) {
            return None;
        }
        Some(match &self.reason {
            Some(reason) => format!("{BLOCKED}: {reason}"),
            None => BLOCKED.to_string(),
        })
    }
}

/// The verdict of `windows` (a project's `spec.syncWindows`) on `app` at `now`, with whether the sync under
/// way in its status (`status.operationState`, not completed) may go on by `syncOverrun`.
pub fn state(windows: &[SyncWindow], app: &Application, now: Timestamp) -> WindowState {
    let (mut state, overrun) = judge(windows, app, now);
    state.overrunning = under_way(app).and_then(|(manual, started)| {
        let blocked = !state.can_sync(manual);
        (blocked && overrun && judge(windows, app, started).0.can_sync(manual)).then_some(started)
    });
    state
}

/// Whether a sync (`manual` or automatic) that started at `started` may take its next step at `now`: the
/// windows let a new one of its kind start now, or they let it start then and `syncOverrun` covers every
/// window that blocks it now. The windows are the project's as they are now.
pub fn may_run_on(
    windows: &[SyncWindow],
    app: &Application,
    manual: bool,
    started: Timestamp,
    now: Timestamp,
) -> bool {
    let (state, overrun) = judge(windows, app, now);
    state.can_sync(manual) || (overrun && judge(windows, app, started).0.can_sync(manual))
}

/// The sync under way in `app`'s status: whether a person started it (auto-sync did not), and when.
fn under_way(app: &Application) -> Option<(bool, Timestamp)> {
    let running = app.status.as_ref()?.operation_state.as_ref()?;
    if OperationPhase::of(running).is_completed() {
        return None;
    }
    let manual = running.operation.initiated_by.as_ref().and_then(|i| i.automated) != Some(true);
    Some((manual, running.started_at.0))
}

/// [`state`] at `now` without looking at a sync under way, and whether `syncOverrun` covers every window
/// that blocks syncs then (so a sync under way that the windows let start may go on).
fn judge(windows: &[SyncWindow], app: &Application, now: Timestamp) -> (WindowState, bool) {
    let mut state = WindowState { can_sync_auto: true, can_sync_manual: true, ..Default::default() };
    let mut invalid = Vec::new();
    let (mut denying, mut allowing, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
    for (index, spec) in windows.iter().enumerate() {
        if !selects(spec, app) {
            continue;
        }
        state.assigned.push(index);
        match Window::parse(index, spec) {
            Err(e) => invalid.push(e),
            Ok(window) => {
                let active = window.is_active(now);
                if active {
                    state.active.push(index);
                }
                match (window.kind, active) {
                    (Kind::Deny, true) => denying.push(window),
                    (Kind::Deny, false) => {}
                    (Kind::Allow, true) => allowing.push(window),
                    (Kind::Allow, false) => waiting.push(window),
                }
            }
        }
    }
    let all_manual = |windows: &[Window]| windows.iter().all(|w| w.manual_sync);
    let all_overrun = |windows: &[Window]| windows.iter().all(|w| w.sync_overrun);
    // The allow windows block only while none of them is open; a window that does not parse fails closed,
    // for a sync under way too.
    let overrun =
        invalid.is_empty() && all_overrun(&denying) && (!allowing.is_empty() || all_overrun(&waiting));
    let (manual, reason) = if let Some(first) = invalid.first() {
        (false, format!("{first} (a window that does not parse blocks every sync)"))
    } else if !denying.is_empty() {
        let verb = if denying.len() == 1 { "is" } else { "are" };
        (all_manual(&denying), format!("{} {verb} active", describe(windows, &denying)))
    } else if !allowing.is_empty() || waiting.is_empty() {
        return (state, overrun);
    } else {
        (all_manual(&waiting), format!("outside {}", describe(windows, &waiting)))
    };
    state.can_sync_auto = false;
    state.can_sync_manual = manual;
    state.reason = Some(if manual { format!("{reason}; manual syncs are allowed") } else { reason });
    (state, overrun)
}

/// `deny window 0 ('0 22 * * *' for 1h, Europe/Amsterdam)`, or several: `allow windows 1 (…), 3 (…)`.
fn describe(specs: &[SyncWindow], windows: &[Window]) -> String {
    let kind = windows.first().map(|w| w.kind.as_str()).unwrap_or_default();
    let plural = if windows.len() == 1 { "" } else { "s" };
    let each: Vec<String> = windows
        .iter()
        .map(|w| {
            let spec = &specs[w.index];
            let zone = spec.time_zone.as_deref().filter(|z| !z.is_empty()).unwrap_or("UTC");
            format!(
                "{} ('{}' for {}, {zone})",
                w.index,
                spec.schedule.as_deref().unwrap_or_default(),
                spec.duration.as_deref().unwrap_or_default()
            )
        })
        .collect();
    format!("{kind} window{plural} {}", each.join(", "))
}

/// Argo CD's checks of a project's windows before it is stored: each parses, each selects by at least one
/// list, no two share kind, schedule and duration, and a description is at most 255 characters.
pub fn validate(windows: &[SyncWindow]) -> Result<(), WindowError> {
    let mut seen = std::collections::HashSet::new();
    for (index, spec) in windows.iter().enumerate() {
        Window::parse(index, spec)?;
        let error = |field: &'static str, message: String| Err(WindowError { index, field, message });
        if spec.applications.is_empty() && spec.namespaces.is_empty() && spec.clusters.is_empty() {
            return error("applications", "one of applications, namespaces or clusters is required".into());
        }
        if spec.description.as_ref().is_some_and(|d| d.chars().count() > 255) {
            return error("description", "longer than 255 characters".into());
        }
        if !seen.insert((&spec.kind, &spec.schedule, &spec.duration)) {
            return error(
                "schedule",
                format!(
                    "a {} window '{}' for {} already exists: update it instead",
                    spec.kind.as_deref().unwrap_or_default(),
                    spec.schedule.as_deref().unwrap_or_default(),
                    spec.duration.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
