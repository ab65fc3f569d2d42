// Kubernetes Events of the Application or of one resource, newest first.
import { useEffect, useState } from 'preact/hooks';
import { getEvents, type AppRef, type EventFilter } from '../api/applications';
import type { KubeEvent } from '../api/types';
import { formatTime, timeAgo, useNow } from '../lib/time';

function when(e: KubeEvent): string | undefined {
  return e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata.creationTimestamp;
}

export function Events({ app, filter, version }: { app: AppRef; filter?: EventFilter; version?: string }) {
  const [events, setEvents] = useState<KubeEvent[] | undefined>();
  const [error, setError] = useState<string>();
  const now = useNow();
  const key = JSON.stringify(filter ?? {});
  useEffect(() => {
    const abort = new AbortController();
    getEvents(app, filter, abort.signal)
      .then((list) => {
        setEvents(list.slice().sort((a, b) => Date.parse(when(b) ?? '') - Date.parse(when(a) ?? '')));
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError((e as Error).message);
      });
    return () => abort.abort();
    // `key` stands for `filter`; a new `version` of the app may come with new events
  }, [app, key, version]);
  if (error) return <p class="banner banner-bad">Could not load events: {error}</p>;
  if (!events) return <p class="empty">Loading events…</p>;
  if (events.length === 0) return <p class="empty">No events.</p>;
  return (
    <table class="table events">
      <thead>
        <tr>
          <th scope="col">Type</th>
          <th scope="col">Reason</th>
          <th scope="col">Message</th>
          <th scope="col">Count</th>
          <th scope="col">Last seen</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.metadata.name} class={e.type === 'Warning' ? 'warning' : ''}>
            <td>{e.type ?? 'Normal'}</td>
            <td>{e.reason}</td>
            <td class="wrap">{e.message}</td>
            <td>{e.count ?? 1}</td>
            <td title={formatTime(when(e))}>{timeAgo(when(e), now)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
