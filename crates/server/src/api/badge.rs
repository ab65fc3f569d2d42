//! `GET /api/badge`: an SVG badge of one application's health and sync status (`?name=`), or of all the
//! applications of some projects (`?project=`, repeatable), as Argo CD serves it.
//!
//! Turned on by argocd-cm `statusbadge.enabled: "true"`. No session is needed (READMEs embed the badge),
//! so it shows nothing but those statuses: while the badge is off every request reads Unknown / Unknown,
//! whatever it asks; an application that is not there reads "Not Found" (what Argo CD shows too). Query
//! options, as Argo CD's: `revision=true` adds the synced revision (its first 7 characters unless
//! `keepFullRevision=true`), `showAppName=true` a row with the name, `width=` the width in pixels,
//! `namespace=` the Applications' namespace (default: the control namespace; one whose Applications are not
//! served reads "Not Found", and so does an app whose project does not admit its namespace, as the app
//! routes refuse it; `project=` counts only the apps of that namespace). A name, namespace or project that
//! cannot be one is a 400 with no body. Every text is escaped and cut to a bounded length,
//! since a tenant can write an Application's status.

use super::Shared;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::Application;
use std::sync::Arc;

// The colours of Argo CD's badge, by status.
const GREEN: &str = "rgb(24, 190, 82)";
const BLUE: &str = "rgb(13, 173, 234)";
const PURPLE: &str = "rgb(178, 102, 255)";
const ORANGE: &str = "rgb(244, 192, 48)";
const RED: &str = "rgb(233, 109, 118)";
const GREY: &str = "rgb(204, 214, 221)";
/// The background of the name row.
const DARK: &str = "rgb(41, 52, 61)";

/// Widths in pixels: the whole badge, the health part, with a short or a full revision.
const WIDTH: u32 = 131;
const HEALTH_WIDTH: u32 = 77;
const WIDTH_WITH_REVISION: u32 = 192;
const WIDTH_WITH_FULL_REVISION: u32 = 400;
/// The widest badge `width=` may ask for.
const MAX_WIDTH: u32 = 2000;
const ROW_HEIGHT: u32 = 20;
/// Pixels a character of the name row takes.
const CHAR_WIDTH: u32 = 6;
/// Characters of the revision shown unless `keepFullRevision=true`.
const SHORT_REVISION: usize = 7;
/// The longest text the badge shows (a status or revision a tenant wrote is cut there).
const MAX_TEXT: usize = 100;

/// What one badge shows.
#[derive(Debug, PartialEq)]
struct Badge {
    health: String,
    sync: String,
    not_found: bool,
    /// The revision to show, already cut to what is shown.
    revision: Option<String>,
    /// The name row.
    name: Option<String>,
    width: Option<u32>,
}

impl Badge {
    fn unknown() -> Badge {
        Badge {
            health: "Unknown".into(),
            sync: "Unknown".into(),
            not_found: false,
            revision: None,
            name: None,
            width: None,
        }
    }
}

/// `GET /api/badge`.
pub(super) async fn badge(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let enabled = shared.sessions.accounts().server.status_badge_enabled;
    let badge = if enabled {
        match answer(&shared, &query).await {
            Some(badge) => badge,
            None => return StatusCode::BAD_REQUEST.into_response(),
        }
    } else {
        Badge::unknown()
    };
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            // Never cached: a badge that goes stale shows a state that is gone.
            (header::CACHE_CONTROL, "private, no-store"),
            // Pages on other sites fetch badges with XHR; the answer holds nothing a session would add.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        svg(&badge),
    )
        .into_response()
}

/// The badge a query asks for, with the badge on; `None` when a name, namespace or project cannot be one.
async fn answer(shared: &Shared, query: &[(String, String)]) -> Option<Badge> {
    let first = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let is_true = |key: &str| first(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut badge = Badge::unknown();
    let mut revision = String::new();
    let mut app_name = None;
    if let Some(namespace) = first("namespace") {
        if !is_dns_label(namespace) {
            return None;
        }
        badge.not_found = !shared.serves_namespace(namespace);
    }
    let namespace = first("namespace").unwrap_or(&shared.namespace);
    if let Some(name) = first("name")
        && !badge.not_found
    {
        if !is_app_name(name) {
            return None;
        }
        let key = kube::runtime::reflector::ObjectRef::new(name).within(namespace);
        let found = match shared.apps.get(&key) {
            Some(app)
                if super::apps::project_admits(shared, project_of(&app), namespace, name).await.is_ok() =>
            {
                Some(app)
            }
            _ => None,
        };
        match found {
            Some(app) => {
                (badge.health, badge.sync) = statuses(&app);
                revision = synced_revision(&app);
                app_name = Some(name.to_string());
            }
            None => badge.not_found = true,
        }
    }
    let projects: Vec<&str> = query.iter().filter(|(k, _)| k == "project").map(|(_, v)| v.as_str()).collect();
    if !projects.is_empty() && !badge.not_found {
        if projects.iter().any(|p| !p.is_empty() && !is_dns_label(&p.to_ascii_lowercase())) {
            return None;
        }
        let mut apps: Vec<Arc<Application>> = shared
            .apps
            .state()
            .into_iter()
            .filter(|a| a.metadata.namespace.as_deref() == Some(namespace))
            .filter(|a| projects.contains(&project_of(a)))
            .collect();
        // Outside the control namespace only the projects that admit it count: each project the apps
        // use is read once (never one per requested name: the badge needs no session).
        let mut used: Vec<String> = apps.iter().map(|a| project_of(a).to_string()).collect();
        used.sort_unstable();
        used.dedup();
        let mut refusing = Vec::new();
        for project in used {
            if super::apps::project_admits(shared, &project, namespace, "").await.is_err() {
                refusing.push(project);
            }
        }
        apps.retain(|a| !refusing.iter().any(|p| p == project_of(a)));
        (badge.health, badge.sync) = combined(&apps, badge.health, badge.sync);
    }
    if is_true("revision") && !badge.not_found && !revision.is_empty() {
        let full = is_true("keepFullRevision");
        badge.revision = Some(if full { cut(&revision, MAX_TEXT) } else { cut(&revision, SHORT_REVISION) });
        badge.width = Some(if full || revision.chars().count() <= SHORT_REVISION {
            WIDTH_WITH_FULL_REVISION
        } else {
            WIDTH_WITH_REVISION
        });
    }
    if let Some(width) = first("width").and_then(|w| w.trim().parse::<u32>().ok()) {
        badge.width = Some(width.min(MAX_WIDTH));
    }
    if is_true("showAppName") {
        badge.name = app_name;
    }
    Some(badge)
}

/// An Application's health and sync codes as its status says (empty when it says none).
fn statuses(app: &Application) -> (String, String) {
    let status = app.status.as_ref();
    let health = status.and_then(|s| s.health.as_ref()).and_then(|h| h.status.clone()).unwrap_or_default();
    let sync = status.and_then(|s| s.sync.as_ref()).map(|s| s.status.clone()).unwrap_or_default();
    (health, sync)
}

/// The revision of the last sync (of the first source, for several).
fn synced_revision(app: &Application) -> String {
    let result =
        app.status.as_ref().and_then(|s| s.operation_state.as_ref()).and_then(|o| o.sync_result.as_ref());
    result.map(|r| r.revisions.first().cloned().unwrap_or_else(|| r.revision.clone())).unwrap_or_default()
}

fn project_of(app: &Application) -> &str {
    if app.spec.project.is_empty() { "default" } else { &app.spec.project }
}

/// Several applications as one badge: Synced when all are, else OutOfSync; Healthy when all are, else
/// Degraded; none at all keeps what it had.
fn combined(apps: &[Arc<Application>], health: String, sync: String) -> (String, String) {
    if apps.is_empty() {
        return (health, sync);
    }
    let all = |want: &str, of: fn(&(String, String)) -> &String| {
        apps.iter().map(|a| statuses(a)).all(|s| of(&s) == want)
    };
    let health = if all("Healthy", |s| &s.0) { "Healthy" } else { "Degraded" };
    let sync = if all("Synced", |s| &s.1) { "Synced" } else { "OutOfSync" };
    (health.into(), sync.into())
}

fn health_color(health: &str) -> &'static str {
    match health {
        "Healthy" => GREEN,
        "Progressing" => BLUE,
        "Degraded" => RED,
        "Missing" | "Unknown" => PURPLE,
        _ => GREY,
    }
}

fn sync_color(sync: &str) -> &'static str {
    match sync {
        "Synced" => GREEN,
        "OutOfSync" => ORANGE,
        "Unknown" => PURPLE,
        _ => GREY,
    }
}

/// The badge as SVG: an optional name row, then health, sync and an optional revision side by side.
fn svg(badge: &Badge) -> String {
    let width = badge.width.unwrap_or(WIDTH);
    let (health_text, sync_text) = if badge.not_found {
        ("Not Found".to_string(), String::new())
    } else {
        (cut(&badge.health, MAX_TEXT), cut(&badge.sync, MAX_TEXT))
    };
    let (health_fill, sync_fill) = (health_color(&badge.health), sync_color(&badge.sync));
    let name_width = badge.name.as_ref().map(|n| (n.chars().count() as u32 * CHAR_WIDTH).min(MAX_WIDTH));
    let total_width = width.max(name_width.unwrap_or(0)).max(HEALTH_WIDTH);
    let top = if badge.name.is_some() { ROW_HEIGHT } else { 0 };
    let height = top + ROW_HEIGHT;
    // The sync part ends where the revision part starts, or at the right edge.
    let sync_end = if badge.revision.is_some() { WIDTH.min(total_width) } else { total_width };
    let text_y = top + 14;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"{}\">",
        escape(&format!("{health_text} {sync_text}"))
    );
    out.push_str(
        "<g font-family=\"Verdana,DejaVu Sans,Geneva,sans-serif\" font-size=\"11\" text-anchor=\"middle\" \
         fill=\"#fff\">",
    );
    if let Some(name) = &badge.name {
        out.push_str(&format!(
            "<rect id=\"nameRect\" x=\"0\" y=\"0\" width=\"{total_width}\" height=\"{ROW_HEIGHT}\" fill=\"{DARK}\"/>\
             <text id=\"nameText\" x=\"{}\" y=\"14\">{}</text>",
            total_width / 2,
            escape(&cut(name, MAX_TEXT))
        ));
    }
    out.push_str(&format!(
        "<rect id=\"healthRect\" x=\"0\" y=\"{top}\" width=\"{HEALTH_WIDTH}\" height=\"{ROW_HEIGHT}\" \
         fill=\"{health_fill}\"/>\
         <rect id=\"syncRect\" x=\"{HEALTH_WIDTH}\" y=\"{top}\" width=\"{}\" height=\"{ROW_HEIGHT}\" \
         fill=\"{sync_fill}\"/>\
         <text id=\"healthText\" x=\"{}\" y=\"{text_y}\">{}</text>\
         <text id=\"syncText\" x=\"{}\" y=\"{text_y}\">{}</text>",
        sync_end.saturating_sub(HEALTH_WIDTH),
        HEALTH_WIDTH / 2,
        escape(&health_text),
        (HEALTH_WIDTH + sync_end) / 2,
        escape(&sync_text),
    ));
    if let Some(revision) = &badge.revision {
        out.push_str(&format!(
            "<rect id=\"revisionRect\" x=\"{sync_end}\" y=\"{top}\" width=\"{}\" height=\"{ROW_HEIGHT}\" \
             fill=\"{sync_fill}\"/>\
             <text id=\"revisionText\" x=\"{}\" y=\"{text_y}\">({})</text>",
            total_width.saturating_sub(sync_end),
            (sync_end + total_width) / 2,
            escape(revision),
        ));
    }
    out.push_str("</g></svg>");
    out
}

/// The first `max` characters of `text`.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Text for SVG content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A Kubernetes object name (DNS-1123 subdomain): what an Application's name can be.
fn is_app_name(name: &str) -> bool {
    name.len() <= 253 && !name.is_empty() && name.split('.').all(is_dns_label)
}

/// A DNS-1123 label: a namespace, a project.
fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of<'a>(svg: &'a str, id: &str) -> Option<&'a str> {
        let start = svg.find(&format!("id=\"{id}\""))?;
        let open = start + svg[start..].find('>')? + 1;
        Some(&svg[open..open + svg[open..].find('<')?])
    }

    fn fill_of<'a>(svg: &'a str, id: &str) -> Option<&'a str> {
        let start = svg.find(&format!("id=\"{id}\""))?;
        let fill = start + svg[start..].find("fill=\"")? + 6;
        Some(&svg[fill..fill + svg[fill..].find('"')?])
    }

    #[test]
    fn the_badge_shows_health_and_sync_in_their_colours() {
        let badge = Badge { health: "Healthy".into(), sync: "OutOfSync".into(), ..Badge::unknown() };
        let svg = svg(&badge);
        assert_eq!(text_of(&svg, "healthText"), Some("Healthy"));
        assert_eq!(text_of(&svg, "syncText"), Some("OutOfSync"));
        assert_eq!(fill_of(&svg, "healthRect"), Some(GREEN));
        assert_eq!(fill_of(&svg, "syncRect"), Some(ORANGE));
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"131\" height=\"20\""),
            "{svg}"
        );
        assert!(text_of(&svg, "nameText").is_none() && text_of(&svg, "revisionText").is_none());
    }

    #[test]
    fn the_unknown_badge_is_purple_and_not_found_names_no_status() {
        let svg_unknown = svg(&Badge::unknown());
        assert_eq!(text_of(&svg_unknown, "healthText"), Some("Unknown"));
        assert_eq!(fill_of(&svg_unknown, "healthRect"), Some(PURPLE));
        assert_eq!(fill_of(&svg_unknown, "syncRect"), Some(PURPLE));
        let missing = svg(&Badge { not_found: true, ..Badge::unknown() });
        assert_eq!(text_of(&missing, "healthText"), Some("Not Found"));
        assert_eq!(text_of(&missing, "syncText"), Some(""));
    }

    #[test]
    fn a_hostile_name_or_status_is_escaped_and_cut() {
        let badge = Badge {
            health: "<script>alert(1)</script>".into(),
            sync: "x".repeat(10_000),
            name: Some("a\"><script>".into()),
            revision: Some("</text><image href='//evil'/>".into()),
            ..Badge::unknown()
        };
        let svg = svg(&badge);
        assert!(!svg.contains("<script") && !svg.contains("<image") && !svg.contains("'//evil'"), "{svg}");
        assert_eq!(text_of(&svg, "healthText"), Some("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(text_of(&svg, "syncText").map(str::len), Some(MAX_TEXT));
        assert_eq!(fill_of(&svg, "healthRect"), Some(GREY), "an unknown status gets no colour of its own");
    }

    #[test]
    fn the_revision_and_the_name_widen_the_badge() {
        let badge = Badge {
            health: "Healthy".into(),
            sync: "Synced".into(),
            revision: Some("abc1234".into()),
            width: Some(WIDTH_WITH_REVISION),
            name: Some("guestbook".into()),
            not_found: false,
        };
        let svg = svg(&badge);
        assert_eq!(text_of(&svg, "revisionText"), Some("(abc1234)"));
        assert_eq!(text_of(&svg, "nameText"), Some("guestbook"));
        assert_eq!(fill_of(&svg, "revisionRect"), Some(GREEN));
        assert!(svg.contains("width=\"192\" height=\"40\""), "{svg}");
    }

    #[test]
    fn names_and_labels_are_checked_as_kubernetes_checks_them() {
        assert!(is_app_name("guestbook") && is_app_name("web.prod-1"));
        assert!(!is_app_name("") && !is_app_name("Guestbook") && !is_app_name("a/b") && !is_app_name("-a"));
        assert!(is_dns_label("team-a") && !is_dns_label("team.a") && !is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn projects_combine_to_synced_and_healthy_only_when_every_app_is() {
        let app = |health: &str, sync: &str| {
            Arc::new(
                serde_json::from_value::<Application>(serde_json::json!({
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                    "metadata": {"name": "a"},
                    "spec": {"destination": {}, "project": "p"},
                    "status": {"health": {"status": health}, "sync": {"status": sync}},
                }))
                .unwrap(),
            )
        };
        let u = || "Unknown".to_string();
        assert_eq!(combined(&[], u(), u()), (u(), u()));
        let good = [app("Healthy", "Synced"), app("Healthy", "Synced")];
        assert_eq!(combined(&good, u(), u()), ("Healthy".into(), "Synced".into()));
        let mixed = [app("Healthy", "Synced"), app("Progressing", "OutOfSync")];
        assert_eq!(combined(&mixed, u(), u()), ("Degraded".into(), "OutOfSync".into()));
    }
}
