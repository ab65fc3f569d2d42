// Argo CD's application watch: newline-delimited JSON over a response that never ends, read with fetch, and
// opened again with backoff whenever it ends, fails or reports an error line.
import { toLogin } from './client';
import type { ApplicationWatchEvent } from './types';

export interface WatchHandlers {
  onEvent: (events: ApplicationWatchEvent[]) => void;
  /** Called on every (re)connection before its first event: a chance to reload what may have been missed. */
  onConnect?: (reconnect: boolean) => void;
  onStatus?: (connected: boolean) => void;
}

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;

export function watchApplications(query: Record<string, string>, handlers: WatchHandlers): () => void {
  const abort = new AbortController();
  const q = new URLSearchParams(query).toString();
  const url = `/api/v1/stream/applications${q ? `?${q}` : ''}`;
  void run(url, abort.signal, handlers);
  return () => abort.abort();
}

async function run(url: string, signal: AbortSignal, handlers: WatchHandlers): Promise<void> {
  let delay = MIN_DELAY_MS;
  let attempt = 0;
  while (!signal.aborted) {
    let gotEvents = false;
    try {
      const res = await fetch(url, { credentials: 'same-origin', signal, headers: { Accept: 'application/json' } });
      if (res.status === 401) {
        toLogin();
        return;
      }
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      handlers.onConnect?.(attempt > 0);
      handlers.onStatus?.(true);
      gotEvents = await readLines(res.body, signal, handlers.onEvent);
    } catch {
      // network error or aborted: decided below
    }
    // (read again: the fetch above may have been aborted meanwhile)
    if (aborted(signal)) return;
    handlers.onStatus?.(false);
    attempt += 1;
    // A stream that delivered events was healthy: start the backoff over.
    if (gotEvents) delay = MIN_DELAY_MS;
    const wait = delay * (0.75 + Math.random() * 0.5);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
    await sleep(wait, signal);
  }
}

/** Reads until the stream ends or sends an error line; true when at least one event came. */
async function readLines(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  onEvent: (events: ApplicationWatchEvent[]) => void,
): Promise<boolean> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let any = false;
  try {
    while (!signal.aborted) {
      const { done, value } = await reader.read();
      if (done) return any;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      const events: ApplicationWatchEvent[] = [];
      for (const line of lines) {
        if (!line.trim()) continue;
        const msg = JSON.parse(line) as { result?: ApplicationWatchEvent; error?: unknown };
        if (msg.error !== undefined) {
          if (events.length) onEvent(events);
          return any || events.length > 0;
        }
        if (msg.result?.application) events.push(msg.result);
      }
      if (events.length) {
        any = true;
        onEvent(events);
      }
    }
    return any;
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

function aborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
