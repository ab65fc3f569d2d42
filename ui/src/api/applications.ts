// Argo CD's application endpoints, as berth serves them.
import { ApiError, getJson, request, sendJson } from './client';
import type {
  Application,
  ApplicationList,
  Cluster,
  ClusterList,
  KubeEvent,
  ResourceDiff,
  ResourceTree,
  RevisionMetadata,
  Settings,
  SyncOperationResource,
  SyncWindowsResponse,
  UserInfo,
} from './types';

const apps = '/api/v1/applications';

/**
 * Which Application a per-app call is about: its name, and its namespace when that is not the control
 * namespace (sent as Argo CD's `appNamespace`; without it the server looks in the control namespace).
 */
export interface AppRef {
  name: string;
  namespace?: string;
}

/** The URL of one application's endpoint `sub` (`''`, `/sync` …), with `params` and the app's `appNamespace`. */
export function applicationUrl(app: AppRef, sub = '', params: Record<string, string> | URLSearchParams = {}): string {
  const q = new URLSearchParams(params);
  if (app.namespace) q.set('appNamespace', app.namespace);
  const query = q.toString();
  return `${apps}/${encodeURIComponent(app.name)}${sub}${query ? `?${query}` : ''}`;
}

/** A request body naming the app, as Argo CD's request messages do (`name`, `appNamespace`). */
export function applicationBody<T extends object>(app: AppRef, fields: T): { name: string; appNamespace?: string } & T {
  return { name: app.name, ...(app.namespace ? { appNamespace: app.namespace } : {}), ...fields };
}

/** Drops what the UI never reads, so 5,000 apps weigh less in memory. */
export function slim(a: Application): Application {
  if (a.metadata.managedFields === undefined) return a;
  const metadata = { ...a.metadata };
  delete metadata.managedFields;
  return { ...a, metadata };
}

export async function listApplications(signal?: AbortSignal): Promise<ApplicationList> {
  const list = await getJson<ApplicationList>(apps, signal);
  return { ...list, items: (list.items ?? []).map(slim) };
}

export async function getApplication(app: AppRef, refresh?: 'normal' | 'hard'): Promise<Application> {
  return slim(await getJson<Application>(applicationUrl(app, '', refresh ? { refresh } : {})));
}

export function getResourceTree(app: AppRef, signal?: AbortSignal): Promise<ResourceTree> {
  return getJson<ResourceTree>(applicationUrl(app, '/resource-tree'), signal);
}

/** The live manifest of a resource in the app's tree (one it manages, or a ReplicaSet or Pod they own). */
export async function getResourceManifest(
  app: AppRef,
  r: { namespace: string; name: string; group: string; version?: string; kind: string },
  signal?: AbortSignal,
): Promise<string> {
  const q = new URLSearchParams({
    namespace: r.namespace,
    resourceName: r.name,
    group: r.group,
    version: r.version ?? 'v1',
    kind: r.kind,
  });
  const res = await getJson<{ manifest: string }>(applicationUrl(app, '/resource', q), signal);
  return res.manifest;
}

export async function getManagedResources(app: AppRef, signal?: AbortSignal): Promise<ResourceDiff[]> {
  const res = await getJson<{ items?: ResourceDiff[] | null }>(applicationUrl(app, '/managed-resources'), signal);
  return res.items ?? [];
}

const metadataCache = new Map<string, Promise<RevisionMetadata>>();

/** A commit's metadata never changes, so each is asked for once per page load. */
export function getRevisionMetadata(app: AppRef, revision: string): Promise<RevisionMetadata> {
  const key = `${app.namespace ?? ''}/${app.name}@${revision}`;
  let cached = metadataCache.get(key);
  if (!cached) {
    cached = getJson<RevisionMetadata>(applicationUrl(app, `/revisions/${encodeURIComponent(revision)}/metadata`));
    cached.catch(() => metadataCache.delete(key));
    metadataCache.set(key, cached);
  }
  return cached;
}

export interface EventFilter {
  resourceNamespace?: string;
  resourceName?: string;
  resourceUID?: string;
}

export async function getEvents(app: AppRef, filter: EventFilter = {}, signal?: AbortSignal): Promise<KubeEvent[]> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter) as [string, string | undefined][]) if (v) q.set(k, v);
  const res = await getJson<{ items?: KubeEvent[] | null }>(applicationUrl(app, '/events', q), signal);
  return res.items ?? [];
}

export interface SyncRequest {
  revision?: string;
  prune?: boolean;
  dryRun?: boolean;
  resources?: SyncOperationResource[];
}

export function syncApplication(app: AppRef, req: SyncRequest): Promise<Application> {
  return sendJson<Application>('POST', applicationUrl(app, '/sync'), applicationBody(app, req));
}

/**
 * Turns automated sync on (Argo CD's defaults: no prune, no self-heal) or off, with a JSON merge patch. The
 * patch holds whatever the version, so a 409 (the controller wrote status meanwhile) is simply sent again.
 */
export async function setAutoSync(app: AppRef, on: boolean): Promise<Application> {
  const patch = { spec: { syncPolicy: { automated: on ? { prune: false, selfHeal: false } : null } } };
  for (let attempt = 1; ; attempt++) {
    try {
      const body = applicationBody(app, { patch: JSON.stringify(patch), patchType: 'merge' });
      return await sendJson<Application>('PATCH', applicationUrl(app), body);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409) || attempt >= 5) throw e;
    }
  }
}

export function rollbackApplication(app: AppRef, id: number): Promise<Application> {
  return sendJson<Application>('POST', applicationUrl(app, '/rollback'), applicationBody(app, { id }));
}

export async function deleteApplication(app: AppRef, cascade: boolean): Promise<void> {
  await request(applicationUrl(app, '', { cascade: String(cascade) }), { method: 'DELETE' });
}

export function terminateOperation(app: AppRef): Promise<unknown> {
  return sendJson('DELETE', applicationUrl(app, '/operation'));
}

/** The windows of the app's project that apply to it, those open now, and whether a manual sync may start. */
export function getSyncWindows(app: AppRef, signal?: AbortSignal): Promise<SyncWindowsResponse> {
  return getJson<SyncWindowsResponse>(applicationUrl(app, '/syncwindows'), signal);
}

/**
 * Argo CD's can-i: a missing endpoint (an older server) answers "yes", as the server still enforces RBAC. The
 * action is one path segment even when it has slashes (`action/apps/Deployment/restart`).
 */
export async function canI(resource: string, action: string, object: string): Promise<boolean> {
  try {
    const res = await getJson<{ value?: string }>(`/api/v1/account/can-i/${resource}/${encodeURIComponent(action)}/${object}`);
    return res.value === 'yes';
  } catch (e) {
    return e instanceof ApiError && e.status === 404;
  }
}

/** The clusters the caller may see (in-cluster first), with what the controller knows of each. */
export async function listClusters(signal?: AbortSignal): Promise<Cluster[]> {
  const list = await getJson<ClusterList>('/api/v1/clusters', signal);
  return list.items ?? [];
}

/** The server's settings; a logged-in caller's include the control namespace. */
export function getSettings(): Promise<Settings> {
  return getJson<Settings>('/api/v1/settings');
}

export function userInfo(): Promise<UserInfo> {
  return getJson<UserInfo>('/api/v1/session/userinfo');
}

export function login(username: string, password: string): Promise<unknown> {
  return sendJson('POST', '/api/v1/session', { username, password });
}

/** Ends a local account's session: the token stops working and the cookie is cleared. */
export async function logout(): Promise<void> {
  try {
    await request('/api/v1/session', { method: 'DELETE' });
  } catch {
    // an older server has no logout: the cookie then lives until it expires
  }
}

/**
 * Where "Log in via …" goes: the server's `/auth/login` sends the browser to the provider, and its callback
 * sets the session cookie and comes back to `returnPath` (a path of this site).
 */
export function ssoLoginHref(returnPath: string): string {
  return `/auth/login?return_url=${encodeURIComponent(returnPath)}`;
}

/**
 * Ends an SSO session: a full navigation to the server's `/auth/logout`, which clears the cookie and sends the
 * browser on to the provider's logout page (oidc.config's `logoutURL`) or back to `/login`.
 */
export function ssoLogout(): void {
  location.assign('/auth/logout');
}
