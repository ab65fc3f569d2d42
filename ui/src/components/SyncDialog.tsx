// The sync dialog (revision, prune, dry run, which resources) and the operation's progress by phase and wave.
import { useMemo, useState } from 'preact/hooks';
import { syncApplication, terminateOperation, type AppRef } from '../api/applications';
import type { Application, ResourceResult, ResourceStatus } from '../api/types';
import { operationRunning, primarySource, qualifiedName, shortSha } from '../lib/application';
import { formatTime } from '../lib/time';
import { resourceKey } from '../lib/tree';
import { Dialog } from './Dialog';
import { PhaseIcon, SyncStatusIcon } from './Status';

export function SyncDialog({
  app,
  appRef,
  blocked,
  onClose,
  onStarted,
}: {
  app: Application;
  appRef: AppRef;
  /** Why a sync window refuses manual syncs now (the server will refuse this one). */
  blocked?: string;
  onClose: () => void;
  onStarted: (app: Application) => void;
}) {
  const resources = useMemo(() => (app.status?.resources ?? []).filter((r) => !r.hook), [app.status?.resources]);
  const [revision, setRevision] = useState(primarySource(app)?.targetRevision ?? 'HEAD');
  const [prune, setPrune] = useState(false);
  const [dryRun, setDryRun] = useState(false);
  const [chosen, setChosen] = useState<Set<string>>(() => new Set(resources.map(resourceKey)));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const choose = (keys: string[]) => setChosen(new Set(keys));
  const toggle = (key: string) =>
    setChosen((s) => {
      const next = new Set(s);
      if (!next.delete(key)) next.add(key);
      return next;
    });

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const all = chosen.size === resources.length;
      const started = await syncApplication(appRef, {
        revision: revision.trim() || undefined,
        prune,
        dryRun,
        resources: all
          ? undefined
          : resources
              .filter((r) => chosen.has(resourceKey(r)))
              .map((r) => ({ group: r.group ?? '', kind: r.kind, name: r.name, namespace: r.namespace })),
      });
      onStarted(started);
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };

  return (
    <Dialog
      title={`Sync ${qualifiedName(appRef)}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" form="sync-form" class="button primary" disabled={busy || chosen.size === 0}>
            {busy ? 'Starting…' : dryRun ? 'Dry run' : 'Synchronize'}
          </button>
        </>
      }
    >
      <form id="sync-form" class="form" onSubmit={(e) => void submit(e)}>
        {blocked ? (
          <p class="banner banner-warn" role="status">
            {blocked}
          </p>
        ) : null}
        {error ? (
          <p class="banner banner-bad" role="alert">
            {error}
          </p>
        ) : null}
        <label class="field">
          <span>Revision</span>
          <input
            type="text"
            value={revision}
            onInput={(e) => setRevision(e.currentTarget.value)}
            aria-describedby="revision-help"
            autoFocus
          />
          <small id="revision-help" class="muted">
            A branch, tag or commit; the app's target revision by default.
          </small>
        </label>
        <div class="options">
          <label class="check">
            <input type="checkbox" checked={prune} onChange={() => setPrune(!prune)} /> Prune (delete what is no longer in git)
          </label>
          <label class="check">
            <input type="checkbox" checked={dryRun} onChange={() => setDryRun(!dryRun)} /> Dry run
          </label>
        </div>
        <fieldset class="resource-picker">
          <legend>
            Resources ({chosen.size} of {resources.length})
          </legend>
          <div class="picker-actions">
            <button type="button" class="link-button" onClick={() => choose(resources.map(resourceKey))}>
              All
            </button>
            <button
              type="button"
              class="link-button"
              onClick={() => choose(resources.filter((r) => r.status === 'OutOfSync').map(resourceKey))}
            >
              Out of sync
            </button>
            <button type="button" class="link-button" onClick={() => choose([])}>
              None
            </button>
          </div>
          <ul>
            {resources.map((r) => (
              <li key={resourceKey(r)}>
                <label class="check">
                  <input type="checkbox" checked={chosen.has(resourceKey(r))} onChange={() => toggle(resourceKey(r))} />
                  <SyncStatusIcon status={r.status} size={14} />
                  <span>
                    {r.kind} {r.namespace ? `${r.namespace}/` : ''}
                    {r.name}
                  </span>
                </label>
              </li>
            ))}
          </ul>
        </fieldset>
      </form>
    </Dialog>
  );
}

const PHASE_ORDER = ['PreSync', 'Sync', 'PostSync', 'SyncFail', 'PostDelete'];

interface Step {
  phase: string;
  wave: number;
  results: ResourceResult[];
}

function steps(results: ResourceResult[], statuses: ResourceStatus[]): Step[] {
  const waves = new Map(statuses.map((s) => [resourceKey(s), s.syncWave ?? 0]));
  const byStep = new Map<string, Step>();
  for (const r of results) {
    const phase = r.syncPhase ?? 'Sync';
    const wave = waves.get(resourceKey(r)) ?? 0;
    const id = `${phase}/${wave}`;
    const step = byStep.get(id) ?? { phase, wave, results: [] };
    step.results.push(r);
    byStep.set(id, step);
  }
  const rank = (p: string) => (PHASE_ORDER.includes(p) ? PHASE_ORDER.indexOf(p) : PHASE_ORDER.length);
  return Array.from(byStep.values()).sort((a, b) => rank(a.phase) - rank(b.phase) || a.wave - b.wave);
}

export function OperationPanel({
  app,
  appRef,
  canSync,
  onClose,
}: {
  app: Application;
  appRef: AppRef;
  canSync: boolean;
  onClose: () => void;
}) {
  // A requested operation the controller has not picked up yet: the last one's results are not its own.
  const pending = !!app.operation && app.status?.operationState?.phase !== 'Running';
  const state = pending ? undefined : app.status?.operationState;
  const running = operationRunning(app);
  const [error, setError] = useState<string>();
  const op = state?.operation ?? app.operation;
  const by = op?.initiatedBy?.automated ? 'automated sync' : (op?.initiatedBy?.username ?? '—');
  const grouped = steps(state?.syncResult?.resources ?? [], app.status?.resources ?? []);

  return (
    <Dialog
      variant="drawer"
      title={running ? 'Sync in progress' : 'Last sync'}
      onClose={onClose}
      aside={state || pending ? <PhaseIcon phase={state?.phase ?? 'Pending'} /> : undefined}
    >
      <div data-testid="operation">
        {!state && !app.operation ? <p class="empty">No sync has run yet.</p> : null}
        {error ? (
          <p class="banner banner-bad" role="alert">
            {error}
          </p>
        ) : null}
        {state || app.operation ? (
          <dl class="fields">
            <dt>Phase</dt>
            <dd data-testid="operation-phase">{state?.phase ?? 'Pending'}</dd>
            <dt>Message</dt>
            <dd>{state?.message ?? '—'}</dd>
            <dt>Revision</dt>
            <dd>
              <code>{shortSha(state?.syncResult?.revision ?? op?.sync?.revision)}</code>
              {op?.sync?.dryRun ? ' (dry run)' : ''}
              {op?.sync?.prune ? ' (prune)' : ''}
            </dd>
            <dt>Initiated by</dt>
            <dd>{by}</dd>
            <dt>Started</dt>
            <dd>{formatTime(state?.startedAt)}</dd>
            <dt>Finished</dt>
            <dd>{formatTime(state?.finishedAt)}</dd>
          </dl>
        ) : null}
        {running && canSync ? (
          <button
            type="button"
            class="button danger"
            onClick={() => {
              terminateOperation(appRef).catch((e: unknown) => setError((e as Error).message));
            }}
          >
            Terminate
          </button>
        ) : null}
        {grouped.map((step) => (
          <section key={`${step.phase}/${step.wave}`} class="sync-step" aria-label={`${step.phase} phase, wave ${step.wave}`}>
            <h3>
              {step.phase} · wave {step.wave}
            </h3>
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">Name</th>
                  <th scope="col">Status</th>
                  <th scope="col">Message</th>
                </tr>
              </thead>
              <tbody>
                {step.results.map((r) => (
                  <tr key={resourceKey(r)}>
                    <td>{r.kind}</td>
                    <td>{r.namespace ? `${r.namespace}/${r.name}` : r.name}</td>
                    <td>
                      <PhaseIcon phase={(r.hookType ? r.hookPhase : undefined) ?? r.status} size={14} />
                    </td>
                    <td class="wrap">{r.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        ))}
      </div>
    </Dialog>
  );
}
