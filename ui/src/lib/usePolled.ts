// An answer asked for again every few seconds while shown: for what has no watch stream (ApplicationSets).
import { useEffect, useRef, useState } from 'preact/hooks';

export interface PolledState<T> {
  data?: T;
  /** Why the last request failed; the last answer stays shown meanwhile. */
  error?: string;
  /** When the shown answer came. */
  updatedAt?: number;
}

/**
 * `load`'s answer, asked again `everyMs` after each answer, until the component goes or `key` changes (then
 * from nothing again: `key` names what is asked). `load` is read on each request, so it may close over props.
 */
export function usePolled<T>(load: (signal: AbortSignal) => Promise<T>, everyMs: number, key: string): PolledState<T> {
  const [state, setState] = useState<PolledState<T>>({});
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abort = new AbortController();
    setState({});
    const ask = () => {
      loadRef.current(abort.signal)
        .then((data) => {
          if (!abort.signal.aborted) setState({ data, updatedAt: Date.now() });
        })
        .catch((e: unknown) => {
          if (!abort.signal.aborted) setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e) }));
        })
        .finally(() => {
          if (!abort.signal.aborted) timer = setTimeout(ask, everyMs);
        });
    };
    ask();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [key, everyMs]);
  return state;
}
