// The ApplicationSets list (Argo CD's UI lists them beside the applications): each set with its project, its
// generators, how many Applications it owns and their worst health, and its conditions, an error first.
// Sets have no watch stream: the list is asked again every few seconds while shown.
import { useEffect } from 'preact/hooks';
import { listApplicationSets } from '../api/applicationsets';
import type { ApplicationSet } from '../api/types';
import { HealthStatusIcon } from '../components/Status';
import { appRefIn } from '../lib/application';
import {
  conditionIsBad,
  conditionsOf,
  generatorKinds,
  healthCounts,
  ownedApps,
  setError,
  setHealth,
  setProject,
  setRoute,
} from '../lib/applicationset';
import { formatTime, timeAgo, useNow } from '../lib/time';
import { usePolled } from '../lib/usePolled';
import { onLinkClick } from '../router';

/** A set generates and its apps change health at any time; the list follows at this pace. */
const REFRESH_MS = 5_000;

export function ApplicationSetsList({ controlNamespace }: { controlNamespace?: string }) {
  const { data: sets, error, updatedAt } = usePolled(listApplicationSets, REFRESH_MS, 'applicationsets');
  const now = useNow();
  useEffect(() => {
    document.title = 'ApplicationSets · berth';
  }, []);

  return (
    <div class="page appsets-page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <h1>ApplicationSets</h1>
      </nav>
      <p class="muted">
        Sets generate Applications from a template and generators (a list, clusters, folders or files of a git repository…).
        {updatedAt ? <span title={formatTime(new Date(updatedAt).toISOString())}> Updated {timeAgo(new Date(updatedAt).toISOString(), now)}.</span> : null}
      </p>
      {error ? (
        <p class="banner banner-bad" role="alert">
          Could not load the ApplicationSets: {error}
        </p>
      ) : null}
      {!sets ? (
        error ? null : (
          <p class="empty">Loading ApplicationSets…</p>
        )
      ) : sets.length === 0 ? (
        <p class="empty">No ApplicationSets (or none you may see).</p>
      ) : (
        <div class="table-wrap">
          <table class="table appsets" data-testid="applicationsets">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Project</th>
                <th scope="col">Generators</th>
                <th scope="col">Applications</th>
                <th scope="col">Health</th>
                <th scope="col">Conditions</th>
              </tr>
            </thead>
            <tbody>
              {sets.map((s) => (
                <SetRow key={`${s.metadata.namespace ?? ''}/${s.metadata.name}`} set={s} controlNamespace={controlNamespace} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function SetRow({ set, controlNamespace }: { set: ApplicationSet; controlNamespace?: string }) {
  const ref = appRefIn(set.metadata.name, set.metadata.namespace, controlNamespace);
  const path = setRoute(ref);
  const error = setError(set);
  const health = setHealth(set);
  const counts = healthCounts(set);
  const apps = ownedApps(set).length;
  return (
    <tr data-appset={set.metadata.name} class={error ? 'error' : undefined}>
      <td>
        <a href={path} onClick={(e) => onLinkClick(e, path)}>
          <strong>{ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name}</strong>
        </a>
      </td>
      <td data-testid="appset-project">{setProject(set)}</td>
      <td class="wrap" data-testid="appset-generators">
        {generatorKinds(set).join(', ') || '—'}
      </td>
      <td data-testid="appset-apps">{apps}</td>
      <td data-testid="appset-health">
        {health ? <HealthStatusIcon status={health} label /> : <span class="muted">—</span>}
        {counts.size > 1 ? (
          <div class="muted small">
            {Array.from(counts)
              .map(([h, n]) => `${n} ${h}`)
              .join(', ')}
          </div>
        ) : null}
      </td>
      <td class="wrap" data-testid="appset-conditions">
        {error ? (
          <div class="text-bad" data-testid="appset-error">
            <strong>ErrorOccurred:</strong> {error.message || error.reason}
          </div>
        ) : null}
        <ul class="condition-chips">
          {conditionsOf(set)
            .filter((c) => c.type !== 'ErrorOccurred' || c.status !== 'True')
            .map((c) => (
              <li
                key={c.type}
                class={`condition-chip${conditionIsBad(c) ? ' bad' : ''}`}
                data-condition={c.type}
                data-status={c.status}
                title={c.message}
              >
                {c.type}: {c.status}
              </li>
            ))}
        </ul>
      </td>
    </tr>
  );
}
