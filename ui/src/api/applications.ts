// Argo CD's application endpoints, as berth serves them.
import { ApiError, getJson, request, sendJson } from './client';
import type {
  Application,
  ApplicationList,
  KubeEvent,
  ResourceDiff,
  ResourceTree,
  RevisionMetadata,
  SyncOperationResource,
  UserInfo,
} from './types';

const apps = '/api/v1/applications';
const app = (name: string) => `${apps}/${encodeURIComponent(name)}`;

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

export async function getApplication(name: string, refresh?: 'normal' | 'hard'): Promise<Application> {
  return slim(await getJson<Application>(refresh ? `${app(name)}?refresh=${refresh}` : app(name)));
}

export function getResourceTree(name: string, signal?: AbortSignal): Promise<ResourceTree> {
  return getJson<ResourceTree>(`${app(name)}/resource-tree`, signal);
}

/** The live manifest of a resource in the app's tree (one it manages, or a ReplicaSet or Pod they own). */
export async function getResourceManifest(
  name: string,
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
  const res = await getJson<{ manifest: string }>(`${app(name)}/resource?${q.toString()}`, signal);
  return res.manifest;
}

export async function getManagedResources(name: string, signal?: AbortSignal): Promise<ResourceDiff[]> {
  const res = await getJson<{ items?: ResourceDiff[] | null }>(`${app(name)}/managed-resources`, signal);
  return res.items ?? [];
}

const metadataCache = new Map<string, Promise<RevisionMetadata>>();

/** A commit's metadata never changes, so each is asked for once per page load. */
export function getRevisionMetadata(name: string, revision: string): Promise<RevisionMetadata> {
  const key = `${name}@${revision}`;
  let cached = metadataCache.get(key);
  if (!cached) {
    cached = getJson<RevisionMetadata>(`${app(name)}/revisions/${encodeURIComponent(revision)}/metadata`);
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

export async function getEvents(name: string, filter: EventFilter = {}, signal?: AbortSignal): Promise<KubeEvent[]> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter) as [string, string | undefined][]) if (v) q.set(k, v);
  const query = q.toString();
  const res = await getJson<{ items?: KubeEvent[] | null }>(`${app(name)}/events${query ? `?${query}` : ''}`, signal);
  return res.items ?? [];
}

export interface SyncRequest {
  revision?: string;
  prune?: boolean;
  dryRun?: boolean;
  resources?: SyncOperationResource[];
}

export function syncApplication(name: string, req: SyncRequest): Promise<Application> {
  return sendJson<Application>('POST', `${app(name)}/sync`, { name, ...req });
}

/**
 * Turns automated sync on (Argo CD's defaults: no prune, no self-heal) or off, with a JSON merge patch. The
 * patch holds whatever the version, so a 409 (the controller wrote status meanwhile) is simply sent again.
 */
export async function setAutoSync(name: string, on: boolean): Promise<Application> {
  const patch = { spec: { syncPolicy: { automated: on ? { prune: false, selfHeal: false } : null } } };
  for (let attempt = 1; ; attempt++) {
    try {
      return await sendJson<Application>('PATCH', app(name), { name, patch: JSON.stringify(patch), patchType: 'merge' });
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409) || attempt >= 5) throw e;
    }
  }
}

export function rollbackApplication(name: string, id: number): Promise<Application> {
  return sendJson<Application>('POST', `${app(name)}/rollback`, { name, id });
}

export async function deleteApplication(name: string, cascade: boolean): Promise<void> {
  await request(`${app(name)}?cascade=${String(cascade)}`, { method: 'DELETE' });
}

export function terminateOperation(name: string): Promise<unknown> {
  return sendJson('DELETE', `${app(name)}/operation`);
}

/** Argo CD's can-i: a missing endpoint (an older server) answers "yes", as the server still enforces RBAC. */
export async function canI(resource: string, action: string, object: string): Promise<boolean> {
  try {
    const res = await getJson<{ value?: string }>(`/api/v1/account/can-i/${resource}/${action}/${object}`);
    return res.value === 'yes';
  } catch (e) {
    return e instanceof ApiError && e.status === 404;
  }
}

export function userInfo(): Promise<UserInfo> {
  return getJson<UserInfo>('/api/v1/session/userinfo');
}

export function login(username: string, password: string): Promise<unknown> {
  return sendJson('POST', '/api/v1/session', { username, password });
}

export async function logout(): Promise<void> {
  try {
    await request('/api/v1/session', { method: 'DELETE' });
  } catch {
    // an older server has no logout: the cookie then lives until it expires
  }
}
