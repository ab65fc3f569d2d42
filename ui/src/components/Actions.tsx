// The actions a live object offers (restart, pause, resume …): one button each, a confirmation with the
// action's parameters before it runs, then what came of it. Actions the user may not run are not offered.
import { useEffect, useState } from 'preact/hooks';
import { listResourceActions, permittedActions, runResourceAction, type ActionTarget } from '../api/actions';
import type { AppRef } from '../api/applications';
import { ApiError } from '../api/client';
import type { ResourceAction } from '../api/types';
import { rbacObject } from '../lib/application';

interface Props {
  app: AppRef;
  project: string;
  target: ActionTarget;
  /** The app's resourceVersion: a new one may change what the object offers. (Key the component by the
   * object: another object starts afresh.) */
  version?: string;
}

interface Offer {
  actions: ResourceAction[];
  permitted: Set<string>;
}

interface Outcome {
  ok: boolean;
  text: string;
}

function label(a: ResourceAction): string {
  return a.displayName || a.name;
}

export function ResourceActions({ app, project, target, version }: Props) {
  const [offer, setOffer] = useState<Offer>();
  const [listError, setListError] = useState<string>();
  const [confirming, setConfirming] = useState<ResourceAction>();
  const [values, setValues] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>();
  const [runs, setRuns] = useState(0);
  const { namespace, name, group, kind } = target;
  const apiVersion = target.version;

  useEffect(() => {
    const abort = new AbortController();
    const object = { namespace, name, group, kind, version: apiVersion };
    listResourceActions(app, object, abort.signal)
      .then(async (actions) => {
        const permitted = await permittedActions(rbacObject(project, app), object, actions);
        if (abort.signal.aborted) return;
        setOffer({ actions, permitted });
        setListError(undefined);
      })
      .catch((e: unknown) => {
        if (abort.signal.aborted) return;
        // A server without resource actions, or an object it does not know (yet): nothing to offer.
        if (e instanceof ApiError && e.status === 404) setOffer({ actions: [], permitted: new Set() });
        else setListError(e instanceof Error ? e.message : String(e));
      });
    return () => abort.abort();
  }, [app, project, namespace, name, group, kind, apiVersion, version, runs]);

  const ask = (a: ResourceAction) => {
    setOutcome(undefined);
    setConfirming(a);
    setValues(Object.fromEntries((a.params ?? []).map((p) => [p.name, p.value ?? p.default ?? ''])));
  };

  const run = async (e: Event) => {
    e.preventDefault();
    if (!confirming) return;
    const a = confirming;
    setBusy(true);
    try {
      const params = (a.params ?? []).map((p) => ({ name: p.name, value: values[p.name] ?? '' }));
      await runResourceAction(app, target, a.name, params);
      setOutcome({ ok: true, text: `${label(a)} ran on ${kind} ${name}.` });
    } catch (err) {
      setOutcome({ ok: false, text: `Could not run ${label(a)} on ${kind} ${name}: ${(err as Error).message}` });
    } finally {
      setBusy(false);
      setConfirming(undefined);
      setRuns((n) => n + 1);
    }
  };

  const shown = offer?.actions.filter((a) => offer.permitted.has(a.name)) ?? [];
  if (!listError && !shown.length && !outcome) return null;
  return (
    <section class="resource-actions" aria-label="Resource actions" data-testid="resource-actions">
      {listError ? <p class="muted small">The actions could not be listed: {listError}</p> : null}
      {shown.length ? (
        <div class="actions" role="toolbar" aria-label="Actions">
          <span class="muted small">Actions</span>
          {shown.map((a) => (
            <button
              key={a.name}
              type="button"
              class="button small"
              disabled={!!a.disabled || busy}
              title={a.disabled ? `${label(a)} is not available for ${kind} ${name} in its current state` : undefined}
              aria-pressed={confirming?.name === a.name}
              data-action={a.name}
              onClick={() => ask(a)}
            >
              {label(a)}
            </button>
          ))}
        </div>
      ) : null}
      {confirming ? (
        <form class="action-confirm" aria-label={`Run ${label(confirming)}`} onSubmit={(e) => void run(e)}>
          <p>
            Run <strong>{label(confirming)}</strong> on {kind} {namespace ? `${namespace}/` : ''}
            {name}?
          </p>
          {(confirming.params ?? []).map((p) => (
            <label key={p.name} class="field">
              <span>{p.name}</span>
              <input
                type="text"
                inputMode={p.type === 'number' ? 'numeric' : undefined}
                value={values[p.name] ?? ''}
                onInput={(ev) => {
                  const v = ev.currentTarget.value;
                  setValues((old) => ({ ...old, [p.name]: v }));
                }}
              />
            </label>
          ))}
          <div class="actions">
            <button type="submit" class="button primary small" disabled={busy} autoFocus>
              {busy ? 'Running…' : `Run ${label(confirming)}`}
            </button>
            <button type="button" class="button small" onClick={() => setConfirming(undefined)} disabled={busy}>
              Cancel
            </button>
          </div>
        </form>
      ) : null}
      {outcome ? (
        <p class={`banner ${outcome.ok ? 'banner-info' : 'banner-bad'}`} role={outcome.ok ? 'status' : 'alert'}>
          {outcome.text}
        </p>
      ) : null}
    </section>
  );
}
