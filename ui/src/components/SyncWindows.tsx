// The sync windows of an app's project that apply to it: whether a sync may start now, and each window
// (allow or deny, its schedule and length, its clock, whether manual syncs pass, whether it is open now).
import { useEffect, useState } from 'preact/hooks';
import { getSyncWindows, type AppRef } from '../api/applications';
import { ApiError } from '../api/client';
import type { SyncWindow, SyncWindowsResponse } from '../api/types';

/** Windows open and close with the clock, not with the app: asked again this often. */
const WINDOWS_POLL_MS = 60_000;

export interface SyncWindowsState {
  windows?: SyncWindowsResponse;
  error?: string;
}

/**
 * The app's sync windows (none asked while `app` is undefined), asked again every minute and whenever
 * `changed` changes (the project, or what the controller says about windows). A server without the endpoint
 * answers nothing, and nothing shows.
 */
export function useSyncWindows(app: AppRef | undefined, changed: string): SyncWindowsState {
  const [state, setState] = useState<SyncWindowsState>({});
  useEffect(() => {
    if (app === undefined) return;
    const abort = new AbortController();
    const load = () => {
      getSyncWindows(app, abort.signal).then(
        (windows) => setState({ windows }),
        (e: unknown) => {
          if (abort.signal.aborted) return;
          if (e instanceof ApiError && (e.status === 404 || e.status === 501)) setState({});
          else setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e) }));
        },
      );
    };
    load();
    const timer = setInterval(load, WINDOWS_POLL_MS);
    return () => {
      clearInterval(timer);
      abort.abort();
    };
  }, [app, changed]);
  return state;
}

function sameWindow(a: SyncWindow, b: SyncWindow): boolean {
  return (
    a.kind === b.kind &&
    a.schedule === b.schedule &&
    a.duration === b.duration &&
    (a.timeZone ?? '') === (b.timeZone ?? '') &&
    !!a.manualSync === !!b.manualSync &&
    !!a.syncOverrun === !!b.syncOverrun
  );
}

/** What the windows allow now: manual syncs as the server decides, automatic ones by the documented rules. */
export interface WindowVerdict {
  manual: boolean;
  auto: boolean;
  /** Why syncs wait, in a sentence; undefined when every sync may start. */
  reason?: string;
}

/**
 * An active deny window stops automatic syncs (deny wins over an open allow window); when allow windows
 * apply, automatic syncs run only while one is open. Manual syncs: the server's `canSync`.
 */
export function windowVerdict(w: SyncWindowsResponse): WindowVerdict {
  const assigned = w.assignedWindows ?? [];
  const active = w.activeWindows ?? [];
  const manual = w.canSync !== false;
  const denying = active.some((a) => a.kind === 'deny');
  const allowsApply = assigned.some((a) => a.kind === 'allow');
  const allowOpen = active.some((a) => a.kind === 'allow');
  // A window that does not parse blocks every sync: the server then says no without an open deny window.
  const auto = manual && !denying && (!allowsApply || allowOpen);
  if (auto) return { manual, auto };
  const why = denying
    ? 'a deny window is open'
    : allowsApply && !allowOpen
      ? 'no allow window is open'
      : "the project's windows block them";
  return {
    manual,
    auto,
    reason: manual ? `Automatic syncs wait: ${why}; manual syncs are allowed.` : `Syncs wait: ${why}.`,
  };
}

export function SyncWindowsCard({ state }: { state: SyncWindowsState }) {
  const w = state.windows;
  if (!w) {
    return state.error ? (
      <section class="card" aria-label="Sync windows">
        <h2>Sync windows</h2>
        <p class="muted">Could not load the sync windows: {state.error}</p>
      </section>
    ) : null;
  }
  const assigned = w.assignedWindows ?? [];
  const active = w.activeWindows ?? [];
  const verdict = windowVerdict(w);
  // No window applies and syncs may start: nothing worth a card.
  if (!assigned.length && verdict.manual && verdict.auto) return null;
  const headline = !verdict.manual ? 'Sync blocked' : !verdict.auto ? 'Manual sync only' : 'Sync allowed';
  const tone = !verdict.manual ? 'bad' : !verdict.auto ? 'warn' : 'ok';
  return (
    <section class="card" aria-label="Sync windows" data-testid="sync-windows" data-can-sync={String(verdict.manual)}>
      <h2>Sync windows</h2>
      <div class={`card-main text-${tone}`} data-testid="sync-windows-verdict">
        {headline}
      </div>
      {verdict.reason ? <p class="muted">{verdict.reason}</p> : null}
      <ul class="sync-windows" aria-label="Assigned windows">
        {assigned.map((win, i) => {
          const open = active.some((a) => sameWindow(a, win));
          return (
            <li key={i} class={`sync-window${open ? ' open' : ''}`} data-kind={win.kind} data-active={String(open)}>
              <span class={`window-kind kind-${win.kind}`}>{win.kind}</span> <code>{win.schedule}</code> for{' '}
              <code>{win.duration}</code> <span class="muted">({win.timeZone || 'UTC'})</span>
              {win.manualSync ? <span class="muted"> · manual sync allowed</span> : null}
              {win.syncOverrun ? <span class="muted"> · a sync under way may overrun</span> : null}
              {open ? <strong class="window-open"> · active now</strong> : null}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
