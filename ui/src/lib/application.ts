// What the list and the header show of an Application, derived in one place.
import type { AppRef } from '../api/applications';
import type { Application, ApplicationSource, Cluster, HealthStatusCode, SyncStatusCode } from '../api/types';

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

/** The built-in destination: the cluster berth runs in. */
export const IN_CLUSTER_SERVER = 'https://kubernetes.default.svc';
export const IN_CLUSTER_NAME = 'in-cluster';

/** Server URLs compare without a trailing `/`, as berth compares them. */
export function sameServer(a: string, b: string): boolean {
  return a.trim().replace(/\/+$/, '') === b.trim().replace(/\/+$/, '');
}

/** The cluster an app deploys to: its name, and its API server's URL when known. */
export interface ClusterRef {
  name: string;
  server?: string;
}

/**
 * The app's cluster, its destination's `name` or `server` mapped through the clusters list as Argo CD's UI
 * maps it, so both forms show the cluster's name. Without the list (not loaded yet, or not readable): the
 * destination's name, `in-cluster` for the built-in server, else the server's URL.
 */
export function clusterOf(app: Application, clusters?: readonly Cluster[]): ClusterRef {
  const d = app.spec.destination;
  if (d.name) return { name: d.name, server: clusters?.find((c) => c.name === d.name)?.server ?? d.server };
  const server = d.server || IN_CLUSTER_SERVER;
  const known = clusters?.find((c) => sameServer(c.server, server));
  if (known?.name) return { name: known.name, server };
  return { name: sameServer(server, IN_CLUSTER_SERVER) ? IN_CLUSTER_NAME : server, server };
}

/** Whether a cluster filter's value (a cluster's name or its server's URL) selects the app's cluster. */
export function clusterMatches(ref: ClusterRef, value: string): boolean {
  return value === ref.name || (!!ref.server && value.includes('://') && sameServer(value, ref.server));
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
