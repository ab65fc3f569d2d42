// What the list and the header show of an Application, derived in one place.
import type { Application, ApplicationSource, HealthStatusCode, SyncStatusCode } from '../api/types';

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
