// Argo CD's ApplicationSet endpoints, as berth serves them.
import { getJson, request } from './client';
import type { ApplicationSet, ApplicationSetList } from './types';

const sets = '/api/v1/applicationsets';

/** Which set a call is about: its name, and its namespace when that is not the control namespace. */
export interface AppSetRef {
  name: string;
  namespace?: string;
}

/** The URL of one set's endpoint `sub` (`''`, `/resource-tree` …), with Argo CD's `appsetNamespace` when needed. */
export function applicationSetUrl(set: AppSetRef, sub = ''): string {
  const query = set.namespace ? `?${new URLSearchParams({ appsetNamespace: set.namespace }).toString()}` : '';
  return `${sets}/${encodeURIComponent(set.name)}${sub}${query}`;
}

/** The sets the caller may see, by name. */
export async function listApplicationSets(signal?: AbortSignal): Promise<ApplicationSet[]> {
  const list = await getJson<ApplicationSetList>(sets, signal);
  return list.items ?? [];
}

export function getApplicationSet(set: AppSetRef, signal?: AbortSignal): Promise<ApplicationSet> {
  return getJson<ApplicationSet>(applicationSetUrl(set), signal);
}

/** Deletes the set; Kubernetes then removes the Applications it owns. */
export async function deleteApplicationSet(set: AppSetRef): Promise<void> {
  await request(applicationSetUrl(set), { method: 'DELETE' });
}

