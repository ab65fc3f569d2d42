// What the list and the header show of an Application, derived in one place.
import type { AppRef } from '../api/applications';
import type { Application, ApplicationSource, HealthStatusCode, SyncStatusCode } from '../api/types';

/**
 * The app `name` of `namespace` as per-app calls name it: the namespace is kept unless it is the control
 * namespace. `control` undefined (a server that does not say it): every namespace is kept, a form Argo CD's
 * server accepts for the control namespace too.
 */
export function appRefIn(name: string, namespace: string | undefined, control: string | undefined): AppRef {
  return namespace && namespace !== control ? { name, namespace } : { name };
}

export function appRef(app: Application, control: string | undefined): AppRef {
  return appRefIn(app.metadata.name, app.metadata.namespace, control);
}

/** `namespace/name` for an app outside the control namespace, else its name (the list, headers, titles). */
export function qualifiedName(app: AppRef): string {
  return app.namespace ? `${app.namespace}/${app.name}` : app.name;
}

/** The app's page: `/applications/{namespace}/{name}` outside the control namespace, else `/applications/{name}`. */
export function appRoute(app: AppRef): string {
  const name = encodeURIComponent(app.name);
  return app.namespace ? `/applications/${encodeURIComponent(app.namespace)}/${name}` : `/applications/${name}`;
}

/** The app's RBAC object, as can-i takes it: `project/namespace/name` outside the control namespace. */
export function rbacObject(project: string, app: AppRef): string {
  return `${project}/${qualifiedName(app)}`;
}

export function primarySource(app: Application): ApplicationSource | undefined {
  return app.spec.source ?? app.spec.sources?.[0];
}

export function syncStatus(app: Application): SyncStatusCode {
  return app.status?.sync?.status ?? 'Unknown';
}

export function healthStatus(app: Application): HealthStatusCode {
  return app.status?.health?.status ?? 'Unknown';
}

export function shortSha(revision: string | undefined): string {
  if (!revision) return '';
  return /^[0-9a-f]{40}$/i.test(revision) ? revision.slice(0, 7) : revision;
}

export function cluster(app: Application): string {
  const d = app.spec.destination;
  if (d.name) return d.name;
  if (!d.server || d.server === 'https://kubernetes.default.svc') return 'in-cluster';
  return d.server;
}

export function destination(app: Application): string {
  const ns = app.spec.destination.namespace;
  return ns ? `${cluster(app)}/${ns}` : cluster(app);
}

export function repoLabel(app: Application): string {
  const src = primarySource(app);
  if (!src) return '';
  const repo = src.repoURL.replace(/^https?:\/\//, '').replace(/^file:\/\//, '').replace(/\.git$/, '');
  return src.chart ? `${repo} (${src.chart})` : src.path ? `${repo} › ${src.path}` : repo;
}

/** When the last sync ended: the operation's end, or else the newest history entry. */
export function lastSync(app: Application): string | undefined {
  const op = app.status?.operationState;
  if (op?.finishedAt) return op.finishedAt;
  const history = app.status?.history;
  return history?.length ? history[history.length - 1]?.deployedAt : undefined;
}

export function isAutoSync(app: Application): boolean {
  return !!app.spec.syncPolicy?.automated;
}

export function operationRunning(app: Application): boolean {
  const phase = app.status?.operationState?.phase;
  return !!app.operation || phase === 'Running' || phase === 'Terminating';
}

/** What the controller says when a sync window holds a sync back (berth's and Argo CD's wording). */
const WINDOW_BLOCKED = 'blocked by sync window';

/**
 * Why the app waits for a sync window, as the controller reports it: a sync under way that a window holds
 * (the operation stays Running), or an auto-sync it skipped (a condition). Only the reason is kept (which
 * window, whether manual syncs pass). Undefined when no window holds it back, so the list needs no request
 * of its own to tell.
 */
export function windowWait(app: Application): string | undefined {
  const op = app.status?.operationState;
  const message =
    op?.phase === 'Running' && op.message?.includes(WINDOW_BLOCKED)
      ? op.message
      : app.status?.conditions?.find((c) => c.message.includes(WINDOW_BLOCKED))?.message;
  if (message === undefined) return undefined;
  const reason = message.slice(message.indexOf(WINDOW_BLOCKED) + WINDOW_BLOCKED.length).replace(/^:\s*/, '').trim();
  return reason || 'no window allows a sync now';
}

export const SYNC_ORDER: SyncStatusCode[] = ['Synced', 'OutOfSync', 'Unknown'];
export const HEALTH_ORDER: HealthStatusCode[] = ['Healthy', 'Progressing', 'Suspended', 'Degraded', 'Missing', 'Unknown'];

/** Parses "team=web,env!=prod,tier" (a label selector's common forms) and tests labels against it. */
export function matchesSelector(labels: Record<string, string> | undefined, selector: string): boolean {
  const l = labels ?? {};
  for (const raw of selector.split(',')) {
    const term = raw.trim();
    if (!term) continue;
    const ne = term.split('!=');
    if (ne.length === 2) {
      if (l[(ne[0] ?? '').trim()] === (ne[1] ?? '').trim()) return false;
      continue;
    }
    const eq = term.split(/==?/);
    if (eq.length === 2) {
      if (l[(eq[0] ?? '').trim()] !== (eq[1] ?? '').trim()) return false;
      continue;
    }
    if (term.startsWith('!')) {
      if (term.slice(1) in l) return false;
    } else if (!(term in l)) return false;
  }
  return true;
}
