// The applications list: facets with counts, a search box, and tiles or a table, both virtualised.
import { createContext } from 'preact';
import { useContext, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Application, Cluster, HealthStatusCode, SyncStatusCode } from '../api/types';
import { HealthStatusIcon, SyncStatusIcon } from '../components/Status';
import {
  HEALTH_ORDER,
  SYNC_ORDER,
  appRef,
  appRefIn,
  appRoute,
  clusterMatches,
  clusterOf,
  healthStatus,
  lastSync,
  matchesSelector,
  primarySource,
  qualifiedName,
  repoLabel,
  shortSha,
  syncStatus,
  windowWait,
} from '../lib/application';
import { ownerSet, setRoute } from '../lib/applicationset';
import { timeAgo, useNow } from '../lib/time';
import { useApplications } from '../lib/useApplications';
import { useClusterNames } from '../lib/useClusters';
import { useVirtualizer } from '../lib/virtual';
import { navigate, onLinkClick, setQuery } from '../router';

interface Filters {
  search: string;
  sync: string[];
  health: string[];
  projects: string[];
  clusters: string[];
  namespaces: string[];
  labels: string;
}

type View = 'tiles' | 'table';

const LIST_KEYS = ['sync', 'health', 'projects', 'clusters', 'namespaces'] as const;
type ListKey = (typeof LIST_KEYS)[number];

function readFilters(q: URLSearchParams): Filters {
  const list = (k: string) => (q.get(k) ?? '').split(',').filter(Boolean);
  return {
    search: q.get('search') ?? '',
    sync: list('sync'),
    health: list('health'),
    projects: list('projects'),
    clusters: list('clusters'),
    namespaces: list('namespaces'),
    labels: q.get('labels') ?? '',
  };
}

function writeQuery(f: Filters, view: View): void {
  const q = new URLSearchParams();
  if (f.search) q.set('search', f.search);
  for (const k of LIST_KEYS) if (f[k].length) q.set(k, f[k].join(','));
  if (f.labels) q.set('labels', f.labels);
  if (view !== 'tiles') q.set('view', view);
  setQuery(q);
}

type FacetValues = Record<ListKey, (a: Application) => string>;

/** What each facet counts an app under; its cluster by name, through the clusters list once it came. */
function facetValues(clusters: readonly Cluster[] | undefined): FacetValues {
  return {
    sync: syncStatus,
    health: healthStatus,
    projects: (a) => a.spec.project,
    clusters: (a) => clusterOf(a, clusters).name,
    namespaces: (a) => a.spec.destination.namespace ?? '',
  };
}

/** The control namespace: apps outside it show and link as `namespace/name`. */
const ControlNamespace = createContext<string | undefined>(undefined);
/** The clusters, to name each app's cluster by (undefined: not known). */
const Clusters = createContext<readonly Cluster[] | undefined>(undefined);

/** What a tile or a row names the app by, and where it links. */
function labelOf(a: Application, control: string | undefined): { label: string; path: string } {
  const ref = appRef(a, control);
  return { label: qualifiedName(ref), path: appRoute(ref) };
}

function matches(
  a: Application,
  f: Filters,
  search: string,
  control: string | undefined,
  clusters: readonly Cluster[] | undefined,
  values: FacetValues,
): boolean {
  if (search && !qualifiedName(appRef(a, control)).toLowerCase().includes(search)) return false;
  for (const k of LIST_KEYS) {
    if (k === 'clusters' || !f[k].length) continue;
    if (!f[k].includes(values[k](a))) return false;
  }
  // A cluster is chosen by its name, or by its server's URL (a link from elsewhere may carry either).
  if (f.clusters.length) {
    const ref = clusterOf(a, clusters);
    if (!f.clusters.some((v) => clusterMatches(ref, v))) return false;
  }
  return !f.labels || matchesSelector(a.metadata.labels, f.labels);
}

function countBy(apps: Application[], value: (a: Application) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of apps) {
    const v = value(a);
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  return counts;
}

export function ApplicationsList({ query, controlNamespace }: { query: URLSearchParams; controlNamespace?: string }) {
  const { apps, loading, error, live } = useApplications();
  const clusters = useClusterNames();
  const values = useMemo(() => facetValues(clusters), [clusters]);
  const [filters, setFilters] = useState<Filters>(() => readFilters(query));
  const [view, setView] = useState<View>(() => (query.get('view') === 'table' ? 'table' : 'tiles'));

  useEffect(() => writeQuery(filters, view), [filters, view]);
  useEffect(() => {
    document.title = 'Applications · berth';
  }, []);

  const search = filters.search.trim().toLowerCase();
  const shown = useMemo(
    () => apps.filter((a) => matches(a, filters, search, controlNamespace, clusters, values)),
    [apps, filters, search, controlNamespace, clusters, values],
  );

  const facets = useMemo(() => {
    const out = {} as Record<ListKey, Map<string, number>>;
    for (const k of LIST_KEYS) out[k] = countBy(apps, values[k]);
    return out;
  }, [apps, values]);
  const shownSync = useMemo(() => countBy(shown, syncStatus), [shown]);
  const shownHealth = useMemo(() => countBy(shown, healthStatus), [shown]);

  const active = LIST_KEYS.some((k) => filters[k].length > 0) || !!filters.labels || !!filters.search;
  const toggle = (key: ListKey, value: string) =>
    setFilters((f) => ({
      ...f,
      [key]: f[key].includes(value) ? f[key].filter((v) => v !== value) : [...f[key], value],
    }));

  return (
    <div class="list-page">
      <aside class="filters" aria-label="Filters">
        <div class="filters-head">
          <h2>Filters</h2>
          {active ? (
            <button
              type="button"
              class="link-button"
              onClick={() => setFilters({ search: '', sync: [], health: [], projects: [], clusters: [], namespaces: [], labels: '' })}
            >
              Clear all
            </button>
          ) : null}
        </div>
        <Facet
          title="Sync status"
          counts={facets.sync}
          order={SYNC_ORDER}
          selected={filters.sync}
          onToggle={(v) => toggle('sync', v)}
          kind="sync"
        />
        <Facet
          title="Health status"
          counts={facets.health}
          order={HEALTH_ORDER}
          selected={filters.health}
          onToggle={(v) => toggle('health', v)}
          kind="health"
        />
        <Facet title="Projects" counts={facets.projects} selected={filters.projects} onToggle={(v) => toggle('projects', v)} />
        <Facet title="Clusters" counts={facets.clusters} selected={filters.clusters} onToggle={(v) => toggle('clusters', v)} />
        <Facet
          title="Namespaces"
          counts={facets.namespaces}
          selected={filters.namespaces}
          onToggle={(v) => toggle('namespaces', v)}
        />
        <div class="facet">
          <label class="facet-title" for="label-filter">
            Labels
          </label>
          <input
            id="label-filter"
            type="text"
            placeholder="team=web,env!=prod"
            value={filters.labels}
            onInput={(e) => setFilters((f) => ({ ...f, labels: e.currentTarget.value }))}
          />
        </div>
      </aside>

      <section class="list-main" aria-label="Applications">
        <div class="toolbar">
          <input
            type="search"
            class="search"
            placeholder="Search applications"
            aria-label="Search applications by name"
            value={filters.search}
            onInput={(e) => setFilters((f) => ({ ...f, search: e.currentTarget.value }))}
          />
          <div class="summary" aria-live="polite" data-testid="summary">
            <strong>{shown.length === apps.length ? apps.length : `${shown.length} of ${apps.length}`}</strong>{' '}
            {apps.length === 1 ? 'application' : 'applications'}
            {SYNC_ORDER.filter((s) => shownSync.get(s)).map((s) => (
              <span key={s} class="summary-item">
                <SyncStatusIcon status={s} size={14} /> {s} {shownSync.get(s)}
              </span>
            ))}
            {HEALTH_ORDER.filter((s) => shownHealth.get(s)).map((s) => (
              <span key={s} class="summary-item">
                <HealthStatusIcon status={s} size={14} /> {s} {shownHealth.get(s)}
              </span>
            ))}
          </div>
          <span class={`live-dot${live ? ' on' : ''}`} title={live ? 'Live updates on' : 'Reconnecting…'} aria-hidden="true" />
          <div class="segmented" role="radiogroup" aria-label="View">
            {(['tiles', 'table'] as const).map((v) => (
              <button
                key={v}
                type="button"
                role="radio"
                aria-checked={view === v}
                class={view === v ? 'active' : ''}
                onClick={() => setView(v)}
              >
                {v === 'tiles' ? 'Tiles' : 'Table'}
              </button>
            ))}
          </div>
        </div>
        {error ? (
          <p class="banner banner-bad" role="alert">
            Could not load applications: {error}
          </p>
        ) : null}
        {loading ? (
          <p class="empty">Loading applications…</p>
        ) : apps.length === 0 ? (
          <p class="empty">No applications yet (or none you may see).</p>
        ) : shown.length === 0 ? (
          <p class="empty">No application matches these filters.</p>
        ) : (
          <ControlNamespace.Provider value={controlNamespace}>
            <Clusters.Provider value={clusters}>
              {view === 'tiles' ? <TileGrid apps={shown} /> : <AppTable apps={shown} />}
            </Clusters.Provider>
          </ControlNamespace.Provider>
        )}
      </section>
    </div>
  );
}

const FACET_LIMIT = 8;

function Facet(props: {
  title: string;
  counts: Map<string, number>;
  order?: string[];
  selected: string[];
  onToggle: (v: string) => void;
  kind?: 'sync' | 'health';
}) {
  const { title, counts, order, selected, onToggle, kind } = props;
  const [all, setAll] = useState(false);
  const values = order
    ? order.filter((v) => counts.has(v) || selected.includes(v))
    : Array.from(counts.keys()).sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0) || a.localeCompare(b));
  for (const s of selected) if (!values.includes(s)) values.push(s);
  const visible = all ? values : values.slice(0, FACET_LIMIT);
  if (values.length === 0) return null;
  return (
    <fieldset class="facet">
      <legend class="facet-title">{title}</legend>
      {visible.map((v) => (
        <label key={v} class="facet-option">
          <input type="checkbox" checked={selected.includes(v)} onChange={() => onToggle(v)} />
          {kind === 'sync' ? <SyncStatusIcon status={v as SyncStatusCode} size={14} /> : null}
          {kind === 'health' ? <HealthStatusIcon status={v as HealthStatusCode} size={14} /> : null}
          <span class="facet-value">{v || '(none)'}</span>
          <span class="facet-count">{counts.get(v) ?? 0}</span>
        </label>
      ))}
      {values.length > FACET_LIMIT ? (
        <button type="button" class="link-button" onClick={() => setAll(!all)}>
          {all ? 'Show fewer' : `Show all ${values.length}`}
        </button>
      ) : null}
    </fieldset>
  );
}

/** Arrow keys move between items of a virtualised list, scrolling the one reached into view. */
function moveFocus(container: HTMLElement | null, index: number, scrollTo: () => void): void {
  scrollTo();
  let tries = 0;
  const focus = () => {
    const el = container?.querySelector<HTMLElement>(`[data-index="${index}"]`);
    if (el) el.focus();
    else if (tries++ < 5) requestAnimationFrame(focus);
  };
  // Rendered already (the overscan) or once the virtualiser has drawn it.
  focus();
}

function itemKeys(e: KeyboardEvent, path: string): void {
  if (e.key === ' ') {
    e.preventDefault();
    navigate(path);
  }
}

const TILE_MIN_WIDTH = 300;
const TILE_HEIGHT = 176;
const GAP = 12;

function TileGrid({ apps }: { apps: Application[] }) {
  const scroller = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  const now = useNow();
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);
  const columns = Math.max(1, Math.floor((width + GAP) / (TILE_MIN_WIDTH + GAP)));
  const rows = Math.ceil(apps.length / columns);
  const v = useVirtualizer({
    count: rows,
    getScrollElement: () => scroller.current,
    estimateSize: () => TILE_HEIGHT + GAP,
    overscan: 3,
  });

  const onKey = (e: KeyboardEvent, index: number, path: string) => {
    itemKeys(e, path);
    const step: Record<string, number> = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns };
    const d = step[e.key];
    if (d === undefined) return;
    const next = index + d;
    if (next < 0 || next >= apps.length) return;
    e.preventDefault();
    moveFocus(scroller.current, next, () => v.scrollToIndex(Math.floor(next / columns)));
  };

  return (
    <div class="scroller" ref={scroller} data-testid="app-tiles">
      <div style={{ height: `${v.getTotalSize()}px`, position: 'relative' }} role="list" aria-label="Applications">
        {v.getVirtualItems().map((row) => (
          <div
            key={row.key}
            class="tile-row"
            style={{
              transform: `translateY(${row.start}px)`,
              gridTemplateColumns: `repeat(${columns}, minmax(0, 1fr))`,
              height: `${TILE_HEIGHT}px`,
            }}
          >
            {apps.slice(row.index * columns, row.index * columns + columns).map((a, i) => (
              <Tile key={`${a.metadata.namespace ?? ''}/${a.metadata.name}`} app={a} index={row.index * columns + i} now={now} onKey={onKey} />
            ))}
          </div>
        ))}
      </div>
    </div>
  );
}

function Tile({
  app,
  index,
  now,
  onKey,
}: {
  app: Application;
  index: number;
  now: number;
  onKey: (e: KeyboardEvent, index: number, path: string) => void;
}) {
  const src = primarySource(app);
  const sync = syncStatus(app);
  const health = healthStatus(app);
  const control = useContext(ControlNamespace);
  const { label, path } = labelOf(app, control);
  const owner = ownerSet(app);
  const set = owner && { name: owner.name, path: setRoute(appRefIn(owner.name, app.metadata.namespace, control)) };
  const target = clusterOf(app, useContext(Clusters));
  const waiting = windowWait(app);
  return (
    <div role="listitem" class="tile-cell">
    <a
      class={`tile sync-${sync} health-${health}`}
      href={path}
      data-index={index}
      data-app={label}
      onClick={(e) => onLinkClick(e, path)}
      onKeyDown={(e) => onKey(e, index, path)}
    >
      <div class="tile-head">
        <span class="tile-name">{label}</span>
        <HealthStatusIcon status={health} label />
        <SyncStatusIcon status={sync} label />
      </div>
      <dl class="tile-fields">
        <dt>Project</dt>
        <dd>{app.spec.project}</dd>
        <dt>Repository</dt>
        <dd title={src?.repoURL}>{repoLabel(app)}</dd>
        <dt>Revision</dt>
        <dd>
          {src?.targetRevision ?? 'HEAD'}
          {app.status?.sync?.revision ? (
            <>
              {' '}
              · <code title={app.status.sync.revision}>{shortSha(app.status.sync.revision)}</code>
            </>
          ) : null}
        </dd>
        <dt>Cluster</dt>
        <dd title={target.server} data-testid="tile-cluster">
          {target.name}
        </dd>
        <dt>Namespace</dt>
        <dd>{app.spec.destination.namespace ?? '—'}</dd>
        {/* A window holding the app back says more than when it last synced (that stays in the tooltip). */}
        {waiting ? (
          <>
            <dt>Waiting</dt>
            <dd class="text-warn" title={`${waiting} (last sync ${timeAgo(lastSync(app), now)})`} data-testid="window-wait">
              for a sync window: {waiting}
            </dd>
          </>
        ) : (
          <>
            <dt>Last sync</dt>
            <dd>{timeAgo(lastSync(app), now)}</dd>
          </>
        )}
      </dl>
    </a>
    {/* A sibling of the tile's link, not inside it (a link in a link is invalid), laid over its last row. */}
    {set ? (
      <a class="tile-set" href={set.path} data-testid="tile-set" onClick={(e) => onLinkClick(e, set.path)}>
        ApplicationSet: {set.name}
      </a>
    ) : null}
    </div>
  );
}

const ROW_HEIGHT = 40;

function AppTable({ apps }: { apps: Application[] }) {
  const scroller = useRef<HTMLDivElement>(null);
  const now = useNow();
  const control = useContext(ControlNamespace);
  const clusters = useContext(Clusters);
  const v = useVirtualizer({
    count: apps.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
  });
  const onKey = (e: KeyboardEvent, index: number, path: string) => {
    itemKeys(e, path);
    const d = e.key === 'ArrowDown' ? 1 : e.key === 'ArrowUp' ? -1 : 0;
    const next = index + d;
    if (!d || next < 0 || next >= apps.length) return;
    e.preventDefault();
    moveFocus(scroller.current, next, () => v.scrollToIndex(next));
  };
  return (
    <div class="scroller table-scroller" ref={scroller} role="table" aria-label="Applications" aria-rowcount={apps.length + 1}>
      <div class="app-row app-row-head" role="row">
        {['Name', 'Project', 'Sync', 'Health', 'Repository', 'Revision', 'Cluster', 'Namespace', 'Last sync'].map((h) => (
          <span key={h} role="columnheader">
            {h}
          </span>
        ))}
      </div>
      <div style={{ height: `${v.getTotalSize()}px`, position: 'relative' }} role="rowgroup">
        {v.getVirtualItems().map((item) => {
          const a = apps[item.index];
          if (!a) return null;
          const { label, path } = labelOf(a, control);
          const target = clusterOf(a, clusters);
          const src = primarySource(a);
          return (
            <div
              key={`${a.metadata.namespace ?? ''}/${a.metadata.name}`}
              class="app-row"
              role="row"
              aria-rowindex={item.index + 2}
              data-app={label}
              style={{ transform: `translateY(${item.start}px)`, height: `${ROW_HEIGHT}px` }}
              onClick={(e) => {
                if (!(e.target instanceof HTMLAnchorElement)) navigate(path);
              }}
            >
              <span role="cell">
                <a href={path} data-index={item.index} onClick={(e) => onLinkClick(e, path)} onKeyDown={(e) => onKey(e, item.index, path)}>
                  {label}
                </a>
              </span>
              <span role="cell">{a.spec.project}</span>
              <span role="cell">
                <SyncStatusIcon status={syncStatus(a)} label />
              </span>
              <span role="cell">
                <HealthStatusIcon status={healthStatus(a)} label />
              </span>
              <span role="cell" title={src?.repoURL}>
                {repoLabel(a)}
              </span>
              <span role="cell">
                {src?.targetRevision ?? 'HEAD'}
                {a.status?.sync?.revision ? <code> {shortSha(a.status.sync.revision)}</code> : null}
              </span>
              <span role="cell" title={target.server}>
                {target.name}
              </span>
              <span role="cell">{a.spec.destination.namespace ?? ''}</span>
              <span role="cell">{timeAgo(lastSync(a), now)}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}
