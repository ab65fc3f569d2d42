// One ApplicationSet: its conditions (an error first, with its message), the Applications it generated with
// their sync and health, and for a RollingSync its rollout step by step. Asked again every few seconds.
import { useEffect, useState } from 'preact/hooks';
import { canI } from '../api/applications';
import { type AppSetRef, deleteApplicationSet, getApplicationSet } from '../api/applicationsets';
import type { ApplicationSet, ApplicationSetApplicationStatus, RolloutStep } from '../api/types';
import { Dialog } from '../components/Dialog';
import { HealthStatusIcon, RolloutStatusIcon, SyncStatusIcon } from '../components/Status';
import { appRefIn, appRoute, qualifiedName, rbacObject } from '../lib/application';
import {
  conditionIsBad,
  conditionsOf,
  generatorKinds,
  healthCounts,
  isRollingSync,
  ownedApps,
  rolloutSteps,
  setError,
  setHealth,
  setProject,
} from '../lib/applicationset';
import { formatTime, timeAgo, useNow } from '../lib/time';
import { usePolled } from '../lib/usePolled';
import { APPLICATIONSETS_PATH, navigate, onLinkClick } from '../router';

/** The set's conditions and its apps' states change as it generates and rolls out. */
const REFRESH_MS = 3_000;

export function ApplicationSetDetail({ setRef, controlNamespace }: { setRef: AppSetRef; controlNamespace?: string }) {
  const title = qualifiedName(setRef);
  const { data: set, error } = usePolled((signal) => getApplicationSet(setRef, signal), REFRESH_MS, title);
  const [canDelete, setCanDelete] = useState(false);
  const [deleting, setDeleting] = useState(false);
  useEffect(() => {
    document.title = `${title} · ApplicationSets · berth`;
  }, [title]);
  const project = set ? setProject(set) : undefined;
  useEffect(() => {
    if (project) void canI('applicationsets', 'delete', rbacObject(project, setRef)).then(setCanDelete);
  }, [project, setRef.name, setRef.namespace]);

  if (!set) {
    // A set that is not there, or not to be seen, answers 403 alike.
    const missing = error && /permission denied|not found/i.test(error);
    return (
      <div class="page">
        <Crumbs name={title} />
        {error ? (
          <p class="banner banner-bad" role="alert">
            {missing ? `There is no ApplicationSet ${title} (or you may not see it).` : `Could not load ${title}: ${error}`}
          </p>
        ) : (
          <p class="empty">Loading {title}…</p>
        )}
      </div>
    );
  }

  return (
    <div class="page appset-page">
      <div class="app-head">
        <Crumbs name={title} />
        <div class="actions" role="toolbar" aria-label="ApplicationSet actions">
          {canDelete ? (
            <button type="button" class="button danger" onClick={() => setDeleting(true)}>
              Delete
            </button>
          ) : null}
        </div>
      </div>
      {error ? (
        <p class="banner banner-warn" role="status">
          Could not refresh: {error}
        </p>
      ) : null}
      <ErrorBanner set={set} />
      <Summary set={set} />
      <Conditions set={set} />
      <Applications set={set} controlNamespace={controlNamespace} />
      {isRollingSync(set) ? <Rollout set={set} controlNamespace={controlNamespace} /> : null}
      {deleting ? (
        <DeleteSetDialog setRef={setRef} apps={ownedApps(set).length} onClose={() => setDeleting(false)} onDeleted={() => navigate(APPLICATIONSETS_PATH)} />
      ) : null}
    </div>
  );
}

function Crumbs({ name }: { name: string }) {
  return (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href={APPLICATIONSETS_PATH} onClick={(e) => onLinkClick(e, APPLICATIONSETS_PATH)}>
        ApplicationSets
      </a>
      <span aria-hidden="true"> / </span>
      <h1>{name}</h1>
    </nav>
  );
}

/** ErrorOccurred True: why the set made nothing, or not everything. */
function ErrorBanner({ set }: { set: ApplicationSet }) {
  const error = setError(set);
  if (!error) return null;
  return (
    <p class="banner banner-bad" role="alert" data-testid="appset-error">
      <strong>ErrorOccurred{error.reason ? ` (${error.reason})` : ''}:</strong> {error.message}
    </p>
  );
}

function Summary({ set }: { set: ApplicationSet }) {
  const health = setHealth(set);
  const counts = healthCounts(set);
  const tpl = set.spec.template?.spec;
  const source = tpl?.source ?? tpl?.sources?.[0];
  return (
    <div class="cards">
      <section class="card" aria-label="Applications health">
        <h2>Applications</h2>
        <div class="card-main" data-testid="appset-health">
          {health ? <HealthStatusIcon status={health} size={22} label /> : <span class="muted">none generated</span>}
        </div>
        <p class="muted">
          {ownedApps(set).length} application{ownedApps(set).length === 1 ? '' : 's'}
          {counts.size
            ? `: ${Array.from(counts)
                .map(([h, n]) => `${n} ${h}`)
                .join(', ')}`
            : ''}
        </p>
      </section>
      <section class="card" aria-label="Generators">
        <h2>Generators</h2>
        <div class="card-main" data-testid="appset-generators">
          {generatorKinds(set).join(', ') || '—'}
        </div>
        <p class="muted">{set.spec.goTemplate ? 'Go templates' : 'Plain templates ({{param}})'}</p>
      </section>
      <section class="card" aria-label="Template">
        <h2>Template</h2>
        <div class="card-main">
          <span class="muted">project</span> <span data-testid="appset-project">{setProject(set)}</span>
        </div>
        {source ? (
          <p class="muted" title={withoutCredentials(source.repoURL)}>
            {withoutCredentials(source.repoURL)}
            {source.path ? ` › ${source.path}` : ''}
            {source.chart ? ` (${source.chart})` : ''}
          </p>
        ) : null}
        <p class="muted">
          Strategy: {set.spec.strategy?.type ?? 'AllAtOnce'}
          {set.spec.syncPolicy?.applicationsSync ? ` · applications ${set.spec.syncPolicy.applicationsSync}` : ''}
        </p>
      </section>
    </div>
  );
}

/** A repository URL without the `user:password@` a template may carry: secrets stay out of the page. */
function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

function Conditions({ set }: { set: ApplicationSet }) {
  const now = useNow();
  const conditions = conditionsOf(set);
  return (
    <section aria-labelledby="appset-conditions-title">
      <h2 id="appset-conditions-title" class="section-title">
        Conditions
      </h2>
      {conditions.length === 0 ? (
        <p class="empty">No conditions yet: the controller has not reconciled the set.</p>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="appset-conditions">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Status</th>
                <th scope="col">Reason</th>
                <th scope="col">Message</th>
                <th scope="col">Changed</th>
              </tr>
            </thead>
            <tbody>
              {conditions.map((c) => (
                <tr key={c.type} data-condition={c.type} data-status={c.status} class={conditionIsBad(c) ? 'error' : undefined}>
                  <td>{c.type}</td>
                  <td>{c.status}</td>
                  <td>{c.reason ?? ''}</td>
                  <td class="wrap" data-testid="condition-message">
                    {c.message}
                  </td>
                  <td class="muted" title={formatTime(c.lastTransitionTime)}>
                    {timeAgo(c.lastTransitionTime, now)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Applications({ set, controlNamespace }: { set: ApplicationSet; controlNamespace?: string }) {
  const apps = ownedApps(set);
  const rollout = new Map((set.status?.applicationStatus ?? []).map((s) => [s.application, s]));
  const rolling = isRollingSync(set);
  return (
    <section aria-labelledby="appset-apps-title">
      <h2 id="appset-apps-title" class="section-title">
        Generated applications
      </h2>
      {apps.length === 0 ? (
        <p class="empty">No applications: the set has generated none (yet).</p>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="appset-apps">
            <thead>
              <tr>
                <th scope="col">Application</th>
                <th scope="col">Sync</th>
                <th scope="col">Health</th>
                {rolling ? <th scope="col">Rollout</th> : null}
              </tr>
            </thead>
            <tbody>
              {apps.map((a) => {
                const path = appRoute(appRefIn(a.name, a.namespace ?? set.metadata.namespace, controlNamespace));
                const r = rollout.get(a.name);
                return (
                  <tr key={`${a.namespace ?? ''}/${a.name}`} data-app={a.name}>
                    <td>
                      <a href={path} onClick={(e) => onLinkClick(e, path)}>
                        {a.name}
                      </a>
                    </td>
                    <td data-testid="app-sync">
                      <SyncStatusIcon status={a.status} label />
                    </td>
                    <td data-testid="app-health">
                      <HealthStatusIcon status={a.health?.status} label />
                    </td>
                    {rolling ? (
                      <td>
                        {r ? (
                          <>
                            <RolloutStatusIcon status={r.status} />
                            <span class="muted"> step {stepLabel(r.step)}</span>
                          </>
                        ) : (
                          <span class="muted">—</span>
                        )}
                      </td>
                    ) : null}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function stepLabel(step: string | undefined): string {
  return !step || step === '-1' ? 'none' : step;
}

/** A RollingSync step by step: each app's place (Waiting, Pending, Progressing, Healthy), the current step marked. */
function Rollout({ set, controlNamespace }: { set: ApplicationSet; controlNamespace?: string }) {
  const { steps, current } = rolloutSteps(set);
  const progressing = conditionsOf(set).find((c) => c.type === 'RolloutProgressing');
  const specSteps = set.spec.strategy?.rollingSync?.steps ?? [];
  return (
    <section aria-labelledby="appset-rollout-title" data-testid="appset-rollout" data-current-step={current ?? ''}>
      <h2 id="appset-rollout-title" class="section-title">
        Rollout (RollingSync)
      </h2>
      <p class="muted" data-testid="rollout-summary">
        {current ? `Step ${current} of ${specSteps.length || steps.length} is rolling out.` : 'Every step is done.'}
        {progressing?.message ? ` ${progressing.message}` : ''}
      </p>
      <ol class="rollout-steps">
        {steps.map((s) => {
          const spec = Number(s.step) > 0 ? specSteps[Number(s.step) - 1] : undefined;
          const state = s.step === current ? 'current' : s.done ? 'done' : 'waiting';
          return (
            <li key={s.step} class={`rollout-step ${state}`} data-step={s.step} data-state={state} aria-current={s.step === current ? 'step' : undefined}>
              <h3>
                {s.step === '-1' ? 'In no step' : `Step ${s.step}`}
                {s.step === current ? <span class="rollout-badge">current</span> : null}
                {state === 'done' && s.apps.length ? <span class="muted small"> done</span> : null}
              </h3>
              {spec ? <p class="muted small">{describeStep(spec)}</p> : null}
              {s.apps.length === 0 ? (
                <p class="muted small">No application falls in this step.</p>
              ) : (
                <ul class="rollout-apps">
                  {s.apps.map((a) => (
                    <RolloutApp key={a.application} entry={a} set={set} controlNamespace={controlNamespace} />
                  ))}
                </ul>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}

function RolloutApp({ entry, set, controlNamespace }: { entry: ApplicationSetApplicationStatus; set: ApplicationSet; controlNamespace?: string }) {
  const path = appRoute(appRefIn(entry.application, set.metadata.namespace, controlNamespace));
  return (
    <li data-rollout-app={entry.application} data-status={entry.status ?? ''}>
      <a href={path} onClick={(e) => onLinkClick(e, path)}>
        {entry.application}
      </a>{' '}
      <RolloutStatusIcon status={entry.status} />
      {entry.message ? <span class="muted small"> {entry.message}</span> : null}
    </li>
  );
}

/** A step's selector as Argo CD writes it: `env In (dev, qa)`, and its maxUpdate. */
function describeStep(step: RolloutStep): string {
  const terms = (step.matchExpressions ?? []).map((m) => `${m.key} ${m.operator} (${(m.values ?? []).join(', ')})`);
  const max = step.maxUpdate !== undefined ? ` · at most ${String(step.maxUpdate)} at once` : '';
  return `${terms.join(' and ') || 'every application'}${max}`;
}

function DeleteSetDialog({ setRef, apps, onClose, onDeleted }: { setRef: AppSetRef; apps: number; onClose: () => void; onDeleted: () => void }) {
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await deleteApplicationSet(setRef);
      onDeleted();
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={`Delete ${qualifiedName(setRef)}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" form="delete-set-form" class="button danger" disabled={busy || typed !== setRef.name}>
            {busy ? 'Deleting…' : 'Delete'}
          </button>
        </>
      }
    >
      <form id="delete-set-form" class="form" onSubmit={(e) => void submit(e)}>
        {error ? (
          <p class="banner banner-bad" role="alert">
            {error}
          </p>
        ) : null}
        <p>
          Kubernetes then removes the {apps} application{apps === 1 ? '' : 's'} it generated, as their owner is gone.
        </p>
        <label class="field">
          <span>
            Type <strong>{setRef.name}</strong> to confirm
          </span>
          <input type="text" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autoComplete="off" autoFocus />
        </label>
      </form>
    </Dialog>
  );
}
