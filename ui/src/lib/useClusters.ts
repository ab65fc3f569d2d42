// The clusters, for the names of the apps' destinations (the list, the app page) and for the clusters page.
import { useEffect, useState } from 'preact/hooks';
import { listClusters } from '../api/applications';
import type { Cluster } from '../api/types';

/** Clusters change seldom: the list and the app pages share one answer this long. */
const SHARED_FOR_MS = 30_000;

let shared: { at: number; clusters: Promise<Cluster[]> } | undefined;

function sharedClusters(): Promise<Cluster[]> {
  if (!shared || Date.now() - shared.at > SHARED_FOR_MS) {
    const clusters = listClusters();
    shared = { at: Date.now(), clusters };
    clusters.catch(() => {
      if (shared?.clusters === clusters) shared = undefined;
    });
  }
  return shared.clusters;
}

/**
 * The clusters the user may see, to name destinations by: undefined until they come, and when they cannot
 * be read (an older server, no permission), so callers fall back to what the destination says.
 */
export function useClusterNames(): Cluster[] | undefined {
  const [clusters, setClusters] = useState<Cluster[]>();
  useEffect(() => {
    let live = true;
    sharedClusters()
      .then((c) => {
        if (live) setClusters(c);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);
  return clusters;
}

export interface ClustersState {
  clusters?: Cluster[];
  error?: string;
  /** When the shown answer came. */
  updatedAt?: number;
}

/** The clusters with their connection state, asked again every `everyMs` while shown (the state changes). */
export function useClustersLive(everyMs: number): ClustersState {
  const [state, setState] = useState<ClustersState>({});
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abort = new AbortController();
    const load = () => {
      listClusters(abort.signal)
        .then((clusters) => {
          shared = { at: Date.now(), clusters: Promise.resolve(clusters) };
          setState({ clusters, updatedAt: Date.now() });
        })
        .catch((e: unknown) => {
          if (!abort.signal.aborted) setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e) }));
        })
        .finally(() => {
          if (!abort.signal.aborted) timer = setTimeout(load, everyMs);
        });
    };
    load();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [everyMs]);
  return state;
}
