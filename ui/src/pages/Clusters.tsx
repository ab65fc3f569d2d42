// The clusters page (Argo CD's Settings › Clusters): each destination with its connection state, version, the
// apps deploying there and what berth caches of it, asked again every few seconds while the page is open.
import { useEffect } from 'preact/hooks';
import type { Cluster } from '../api/types';
import { ConnectionStatusIcon } from '../components/Status';
import { formatTime, timeAgo, useNow } from '../lib/time';
import { useClustersLive } from '../lib/useClusters';
import { onLinkClick } from '../router';

/** A connection fails or comes back at any time; the page follows it at this pace. */
const REFRESH_MS = 5_000;

/** The list filtered to the apps of one cluster (the list's cluster facet, by name). */
function appsOf(c: Cluster): string {
  return `/applications?${new URLSearchParams({ clusters: c.name || c.server }).toString()}`;
}

export function ClustersPage() {
  const { clusters, error, updatedAt } = useClustersLive(REFRESH_MS);
  const now = useNow();
  useEffect(() => {
    document.title = 'Clusters · berth';
  }, []);

  return (
    <div class="page clusters-page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <span class="muted">Settings</span>
        <span aria-hidden="true"> / </span>
        <h1>Clusters</h1>
      </nav>
      <p class="muted">
        Where applications deploy: the cluster berth runs in, and those added with <code>berth cluster add</code> or an Argo CD
        cluster Secret.
        {updatedAt ? <span title={formatTime(new Date(updatedAt).toISOString())}> Updated {timeAgo(new Date(updatedAt).toISOString(), now)}.</span> : null}
      </p>
      {error ? (
        <p class="banner banner-bad" role="alert">
          Could not load the clusters: {error}
        </p>
      ) : null}
      {!clusters ? (
        error ? null : (
          <p class="empty">Loading clusters…</p>
        )
      ) : clusters.length === 0 ? (
        <p class="empty">No clusters (or none you may see).</p>
      ) : (
        <div class="table-wrap">
          <table class="table clusters" data-testid="clusters">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Server</th>
                <th scope="col">Version</th>
                <th scope="col">Connection</th>
                <th scope="col">Applications</th>
                <th scope="col">Cache</th>
                <th scope="col">Namespaces</th>
                <th scope="col">Project</th>
              </tr>
            </thead>
            <tbody>
              {clusters.map((c) => (
                <ClusterRow key={c.server} cluster={c} now={now} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function ClusterRow({ cluster: c, now }: { cluster: Cluster; now: number }) {
  // Argo CD answers the state in `info`, and at the top too (its older fields; an older server only there).
  const state = c.info?.connectionState ?? c.connectionState;
  const version = c.info?.serverVersion || c.serverVersion;
  const apps = c.info?.applicationsCount;
  const cache = c.info?.cacheInfo;
  const labels = Object.entries(c.labels ?? {});
  return (
    <tr data-cluster={c.name} data-server={c.server}>
      <td>
        <strong>{c.name || c.server}</strong>
        {labels.length ? <div class="muted small">{labels.map(([k, v]) => `${k}=${v}`).join(', ')}</div> : null}
      </td>
      <td>
        <code>{c.server}</code>
      </td>
      <td data-testid="cluster-version">{version || '—'}</td>
      <td class="wrap" data-testid="cluster-connection">
        <ConnectionStatusIcon status={state?.status} label />
        {state?.message ? (
          <div class={state.status === 'Failed' ? 'text-bad' : 'muted small'} data-testid="cluster-message">
            {state.message}
          </div>
        ) : null}
        {state?.attemptedAt ? (
          <div class="muted small" title={formatTime(state.attemptedAt)}>
            checked {timeAgo(state.attemptedAt, now)}
          </div>
        ) : null}
      </td>
      <td data-testid="cluster-apps">
        {apps === undefined ? (
          '—'
        ) : apps > 0 ? (
          <a href={appsOf(c)} onClick={(e) => onLinkClick(e, appsOf(c))} aria-label={`${apps} applications in ${c.name}`}>
            {apps}
          </a>
        ) : (
          '0'
        )}
      </td>
      <td data-testid="cluster-cache">
        {cache?.resourcesCount !== undefined ? <div>{cache.resourcesCount} resources</div> : null}
        {cache?.apisCount ? <div class="muted small">{cache.apisCount} API kinds</div> : null}
        {cache?.lastCacheSyncTime ? (
          <div class="muted small" title={formatTime(cache.lastCacheSyncTime)}>
            synced {timeAgo(cache.lastCacheSyncTime, now)}
          </div>
        ) : null}
        {cache?.resourcesCount === undefined && !cache?.apisCount ? '—' : null}
      </td>
      <td class="wrap" data-testid="cluster-namespaces">
        {c.namespaces?.length ? (
          <>
            {c.namespaces.join(', ')}
            {c.clusterResources ? <div class="muted small">and cluster-scoped resources</div> : null}
          </>
        ) : (
          <span class="muted">all</span>
        )}
      </td>
      <td data-testid="cluster-project">{c.project || '—'}</td>
    </tr>
  );
}
