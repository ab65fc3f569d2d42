// Every Application the user may see, kept current by the watch stream; updates are applied at most once a
// frame, so a burst of 5,000 events costs a handful of renders.
import { useEffect, useRef, useState } from 'preact/hooks';
import { listApplications, slim } from '../api/applications';
import { watchApplications } from '../api/stream';
import type { Application, ApplicationWatchEvent } from '../api/types';

export interface ApplicationsState {
  apps: Application[];
  loading: boolean;
  error?: string;
  live: boolean;
}

/** By name, then namespace: one name may be taken in several namespaces. */
function byName(a: Application, b: Application): number {
  const [x, y] = [a.metadata, b.metadata];
  if (x.name !== y.name) return x.name < y.name ? -1 : 1;
  const [p, q] = [x.namespace ?? '', y.namespace ?? ''];
  return p < q ? -1 : p > q ? 1 : 0;
}

/** An app's key in the list: its namespace and name. */
function keyOf(a: Application): string {
  return `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
}

export function useApplications(): ApplicationsState {
  const [state, setState] = useState<ApplicationsState>({ apps: [], loading: true, live: false });
  const map = useRef(new Map<string, Application>());

  useEffect(() => {
    let frame = 0;
    let stopped = false;
    const abort = new AbortController();
    const flush = () => {
      frame = 0;
      const apps = Array.from(map.current.values()).sort(byName);
      setState((s) => ({ ...s, apps, loading: false }));
    };
    const schedule = () => {
      if (!frame && !stopped) frame = requestAnimationFrame(flush);
    };
    const load = async () => {
      try {
        const list = await listApplications(abort.signal);
        map.current = new Map((list.items ?? []).map((a) => [keyOf(a), a]));
        setState((s) => ({ ...s, error: undefined }));
        schedule();
      } catch (e) {
        if (!abort.signal.aborted) setState((s) => ({ ...s, loading: false, error: (e as Error).message }));
      }
    };
    const apply = (events: ApplicationWatchEvent[]) => {
      for (const ev of events) {
        const a = ev.application;
        if (ev.type === 'DELETED') map.current.delete(keyOf(a));
        else map.current.set(keyOf(a), slim(a));
      }
      schedule();
    };
    let stopWatch: (() => void) | undefined;
    void load().then(() => {
      if (stopped) return;
      stopWatch = watchApplications(
        {},
        {
          onEvent: apply,
          // Deletions missed while disconnected show only in a fresh list.
          onConnect: (reconnect) => {
            if (reconnect) void load();
          },
          onStatus: (live) => setState((s) => (s.live === live ? s : { ...s, live })),
        },
      );
    });
    return () => {
      stopped = true;
      abort.abort();
      stopWatch?.();
      if (frame) cancelAnimationFrame(frame);
    };
  }, []);

  return state;
}
