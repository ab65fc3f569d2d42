// A router of a handful of routes needs no library: the History API and one event.
import { useEffect, useState } from 'preact/hooks';

const CHANGE = 'berth:navigate';

/** The clusters page, where Argo CD's UI has it (Settings › Clusters). */
export const CLUSTERS_PATH = '/settings/clusters';

/** The ApplicationSets list; a set's page is under it. */
export const APPLICATIONSETS_PATH = '/applicationsets';

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const here = location.pathname + location.search;
  if (to === here) return;
  if (options.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.dispatchEvent(new Event(CHANGE));
}

/** Replaces the query string without a new history entry (filters, tabs). */
export function setQuery(params: URLSearchParams): void {
  const query = params.toString();
  history.replaceState(null, '', location.pathname + (query ? `?${query}` : ''));
}

export interface Location {
  path: string;
  query: URLSearchParams;
}

function current(): Location {
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const update = () => setLoc(current());
    window.addEventListener('popstate', update);
    window.addEventListener(CHANGE, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(CHANGE, update);
    };
  }, []);
  return loc;
}

/** Click handler for in-app links: plain clicks navigate in place, modified clicks open as the browser would. */
export function onLinkClick(e: MouseEvent, to: string): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(to);
}
