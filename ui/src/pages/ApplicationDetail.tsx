// One application: status header, sync windows, resource tree, diff, history, events; sync, rollback, refresh,
// delete, and resource actions in the resource panel.
// Live: the app's own watch stream updates the header, and the tree is fetched again (debounced) as it changes.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import {
  canI,
  type AppRef,
  getApplication,
  getManagedResources,
  getResourceTree,
  getRevisionMetadata,
  setAutoSync,
  slim,
} from '../api/applications';
import { ApiError } from '../api/client';
import { watchApplications } from '../api/stream';
import type { Application, ResourceDiff, ResourceTree as Tree, RevisionMetadata } from '../api/types';
import { DeleteDialog } from '../components/DeleteDialog';
import { DiffList } from '../components/DiffView';
import { Events } from '../components/Events';
import { History } from '../components/History';
import { ResourcePanel } from '../components/ResourcePanel';
import { ResourceTree } from '../components/ResourceTree';
import { HealthStatusIcon, PhaseIcon, SyncStatusIcon } from '../components/Status';
import { OperationPanel, SyncDialog } from '../components/SyncDialog';
import { SyncWindowsCard, useSyncWindows, windowVerdict } from '../components/SyncWindows';
import { TabPanel, Tabs } from '../components/Tabs';
import {
  appRefIn,
  clusterOf,
  healthStatus,
  isAutoSync,
  lastSync,
  operationRunning,
  primarySource,
  qualifiedName,
  rbacObject,
  repoLabel,
  shortSha,
  syncStatus,
  windowWait,
} from '../lib/application';
import { ownerSet, setRoute } from '../lib/applicationset';
import { diffItem } from '../lib/manifests';
import { formatTime, timeAgo, useNow } from '../lib/time';
import { useClusterNames } from '../lib/useClusters';
import { latestNode, resourceKey, type GraphNode } from '../lib/tree';
import { CLUSTERS_PATH, navigate, onLinkClick, setQuery } from '../router';

type AppTab = 'tree' | 'diff' | 'history' | 'events';
type Overlay = 'sync' | 'operation' | 'delete' | undefined;

const TREE_DEBOUNCE_MS = 400;

function readTab(q: URLSearchParams): AppTab {
  const t = q.get('tab');
  return t === 'diff' || t === 'history' || t === 'events' ? t : 'tree';
}

interface Permissions {
  known: boolean;
  sync: boolean;
  update: boolean;
  delete: boolean;
}

export function ApplicationDetail(props: {
  /** The app the route names (its namespace only when that is not the control namespace). */
  appRef: AppRef;
  /** The control namespace, when the server says it (the watch asks for that namespace's app then). */
  controlNamespace?: string;
  query: URLSearchParams;
}) {
  const { query, controlNamespace } = props;
  const { name, namespace } = props.appRef;
  // One object per app, so the effects keyed by it run again only for another app.
  const ref = useMemo<AppRef>(() => (namespace ? { name, namespace } : { name }), [name, namespace]);
  const title = qualifiedName(ref);
  const [app, setApp] = useState<Application>();
  const [loadError, setLoadError] = useState<string>();
  const [deleted, setDeleted] = useState(false);
  const [tree, setTree] = useState<Tree>();
  const [managed, setManaged] = useState<ResourceDiff[]>();
  const [wantManaged, setWantManaged] = useState(false);
  const [tab, setTab] = useState<AppTab>(() => readTab(query));
  const [overlay, setOverlay] = useState<Overlay>();
  const [selected, setSelected] = useState<GraphNode>();
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const [refreshing, setRefreshing] = useState<'normal' | 'hard'>();
  const [actionError, setActionError] = useState<string>();
  const [perm, setPerm] = useState<Permissions>({ known: false, sync: false, update: false, delete: false });
  const [live, setLive] = useState(false);
  const [windowsAsked, setWindowsAsked] = useState(0);
  const waiting = app ? windowWait(app) : undefined;
  const windows = useSyncWindows(app ? ref : undefined, `${app?.spec.project ?? ''}|${waiting ?? ''}|${String(windowsAsked)}`);

  useEffect(() => {
    document.title = `${title} · berth`;
  }, [title]);

  useEffect(() => {
    const q = new URLSearchParams();
    if (tab !== 'tree') q.set('tab', tab);
    setQuery(q);
  }, [tab]);

  const loadTree = useCallback(() => {
    getResourceTree(ref)
      .then(setTree)
      .catch(() => undefined);
  }, [ref]);

  const loadManaged = useCallback(() => {
    getManagedResources(ref)
      .then(setManaged)
      .catch(() => setManaged([]));
  }, [ref]);

  const wantManagedRef = useRef(wantManaged);
  wantManagedRef.current = wantManaged;

  // The app, then its watch; every change brings the tree (and manifests, when shown) again.
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reload = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (stopped) return;
        loadTree();
        if (wantManagedRef.current) loadManaged();
      }, TREE_DEBOUNCE_MS);
    };
    setApp(undefined);
    setTree(undefined);
    setManaged(undefined);
    setLoadError(undefined);
    setDeleted(false);
    getApplication(ref)
      .then((a) => {
        if (!stopped) setApp(a);
      })
      .catch((e: unknown) => {
        if (!stopped) setLoadError(e instanceof ApiError && e.status === 404 ? `There is no application ${title}.` : (e as Error).message);
      });
    loadTree();
    // Without a namespace the stream sends the apps of that name in every namespace served.
    const appNamespace = ref.namespace ?? controlNamespace;
    const stop = watchApplications(
      appNamespace ? { name, appNamespace } : { name },
      {
        onEvent: (events) => {
          for (const ev of events) {
            const m = ev.application.metadata;
            if (m.name !== name || (appNamespace && m.namespace && m.namespace !== appNamespace)) continue;
            if (ev.type === 'DELETED') setDeleted(true);
            else {
              setDeleted(false);
              setApp(ev.application);
              if (ev.type === 'MODIFIED') reload();
            }
          }
        },
        onStatus: setLive,
      },
    );
    return () => {
      stopped = true;
      clearTimeout(timer);
      stop();
    };
  }, [ref, name, title, controlNamespace, loadTree, loadManaged]);

  useEffect(() => {
    if (wantManaged) loadManaged();
  }, [wantManaged, loadManaged]);
  useEffect(() => {
    if (tab === 'diff' || selected) setWantManaged(true);
  }, [tab, selected]);

  const project = app?.spec.project;
  useEffect(() => {
    if (!project) return;
    const object = rbacObject(project, ref);
    void Promise.all([
      canI('applications', 'sync', object),
      canI('applications', 'update', object),
      canI('applications', 'delete', object),
    ]).then(([sync, update, del]) => setPerm({ known: true, sync, update, delete: del }));
  }, [project, ref]);

  const toggleAutoSync = async (on: boolean) => {
    setActionError(undefined);
    try {
      setApp(await setAutoSync(ref, on));
    } catch (e) {
      setActionError(`Could not turn auto-sync ${on ? 'on' : 'off'}: ${(e as Error).message}`);
    }
  };

  const refresh = async (kind: 'normal' | 'hard') => {
    setRefreshing(kind);
    setActionError(undefined);
    try {
      setApp(await getApplication(ref, kind));
      setWindowsAsked((n) => n + 1);
      loadTree();
      if (wantManaged) loadManaged();
    } catch (e) {
      setActionError(`Refresh failed: ${(e as Error).message}`);
    } finally {
      setRefreshing(undefined);
    }
  };

  // The panel shows the node as the latest tree has it.
  const selectedNow = useMemo(() => (selected && app ? latestNode(app, tree, selected) : undefined), [selected, app, tree]);
  const selectedManaged = useMemo(
    () => (selected && managed ? managed.find((m) => resourceKey(m) === resourceKey(selected)) : undefined),
    [selected, managed],
  );
  const diffItems = useMemo(() => (managed ?? []).filter((m) => !m.hook).map(diffItem), [managed]);

  if (loadError && !app) {
    return (
      <div class="page">
        <Crumbs name={title} />
        <p class="banner banner-bad" role="alert">
          {loadError}
        </p>
      </div>
    );
  }
  if (!app) {
    return (
      <div class="page">
        <Crumbs name={title} />
        <p class="empty">Loading {title}…</p>
      </div>
    );
  }

  const running = operationRunning(app);
  const verdict = windows.windows ? windowVerdict(windows.windows) : undefined;
  const tabs: { id: AppTab; label: string }[] = [
    { id: 'tree', label: 'Resources' },
    { id: 'diff', label: 'Diff' },
    { id: 'history', label: 'History and rollback' },
    { id: 'events', label: 'Events' },
  ];

  return (
    <div class="page app-page">
      <div class="app-head">
        <Crumbs name={title} />
        <div
          class="actions"
          role="toolbar"
          aria-label="Application actions"
          data-permissions={perm.known ? 'known' : 'pending'}
        >
          {perm.sync ? (
            <button type="button" class="button primary" onClick={() => setOverlay('sync')} disabled={running}>
              Sync
            </button>
          ) : null}
          <button type="button" class="button" onClick={() => void refresh('normal')} disabled={!!refreshing}>
            {refreshing === 'normal' ? 'Refreshing…' : 'Refresh'}
          </button>
          <button
            type="button"
            class="button"
            onClick={() => void refresh('hard')}
            disabled={!!refreshing}
            title="Render the manifests again, ignoring the cache"
          >
            {refreshing === 'hard' ? 'Refreshing…' : 'Hard refresh'}
          </button>
          <button type="button" class="button" onClick={() => setOverlay('operation')}>
            {running ? 'Sync progress' : 'Last sync'}
          </button>
          {perm.delete ? (
            <button type="button" class="button danger" onClick={() => setOverlay('delete')}>
              Delete
            </button>
          ) : null}
          <span class={`live-dot${live ? ' on' : ''}`} title={live ? 'Live updates on' : 'Reconnecting…'} aria-hidden="true" />
        </div>
      </div>

      <OwnerSet app={app} controlNamespace={controlNamespace} />
      {deleted ? (
        <p class="banner banner-warn" role="status">
          This application was deleted.{' '}
          <a href="/applications" onClick={(e) => onLinkClick(e, '/applications')}>
            Back to the list
          </a>
        </p>
      ) : null}
      {actionError ? (
        <p class="banner banner-bad" role="alert">
          {actionError}
        </p>
      ) : null}

      <StatusCards
        app={app}
        appRef={ref}
        waiting={waiting}
        onOperation={() => setOverlay('operation')}
        onAutoSync={perm.update ? (on) => void toggleAutoSync(on) : undefined}
        windows={<SyncWindowsCard state={windows} />}
      />
      <Conditions app={app} />

      <Tabs tabs={tabs} current={tab} onChange={setTab} label="Application views" idPrefix="app" />
      <TabPanel idPrefix="app" current={tab}>
        {tab === 'tree' ? (
          <ResourceTree
            app={app}
            tree={tree}
            expanded={expanded}
            selected={selected?.id}
            onSelect={(n) => (n.root ? setTab('events') : setSelected(n))}
            onToggleGroup={(id) =>
              setExpanded((s) => {
                const next = new Set(s);
                if (!next.delete(id)) next.add(id);
                return next;
              })
            }
          />
        ) : null}
        {tab === 'diff' ? (
          managed ? (
            <DiffList items={diffItems} emptyText="No differences: the cluster matches git." />
          ) : (
            <p class="empty">Loading manifests…</p>
          )
        ) : null}
        {tab === 'history' ? <History
            app={app}
            appRef={ref}
            canRollback={perm.sync}
            onDisableAutoSync={perm.update ? () => void toggleAutoSync(false) : undefined}
            onRolledBack={(started) => {
              setApp(slim(started));
              setOverlay('operation');
            }}
          /> : null}
        {tab === 'events' ? <Events app={ref} version={app.metadata.resourceVersion} /> : null}
      </TabPanel>

      {selectedNow ? (
        <ResourcePanel
          app={ref}
          project={app.spec.project}
          node={selectedNow}
          managed={selectedManaged}
          managedLoading={!managed}
          version={app.metadata.resourceVersion}
          onClose={() => setSelected(undefined)}
        />
      ) : null}
      {overlay === 'sync' ? (
        <SyncDialog
          app={app}
          appRef={ref}
          blocked={verdict && !verdict.manual ? verdict.reason : undefined}
          onClose={() => setOverlay(undefined)}
          onStarted={(started) => {
            setApp(slim(started));
            setOverlay('operation');
          }}
        />
      ) : null}
      {overlay === 'operation' ? <OperationPanel app={app} appRef={ref} canSync={perm.sync} onClose={() => setOverlay(undefined)} /> : null}
      {overlay === 'delete' ? (
        <DeleteDialog app={ref} onClose={() => setOverlay(undefined)} onDeleted={() => navigate('/applications')} />
      ) : null}
    </div>
  );
}

/** The set that generated the app, when one did: changes to the app belong in the set's template. */
function OwnerSet({ app, controlNamespace }: { app: Application; controlNamespace?: string }) {
  const owner = ownerSet(app);
  if (!owner) return null;
  const path = setRoute(appRefIn(owner.name, app.metadata.namespace, controlNamespace));
  return (
    <p class="owner-set muted" data-testid="app-set">
      ApplicationSet:{' '}
      <a href={path} onClick={(e) => onLinkClick(e, path)}>
        {owner.name}
      </a>
    </p>
  );
}

function Crumbs({ name }: { name: string }) {
  return (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href="/applications" onClick={(e) => onLinkClick(e, '/applications')}>
        Applications
      </a>
      <span aria-hidden="true"> / </span>
      <h1>{name}</h1>
    </nav>
  );
}

function useCommit(app: AppRef, revision: string | undefined): RevisionMetadata | undefined {
  const [meta, setMeta] = useState<RevisionMetadata>();
  useEffect(() => {
    setMeta(undefined);
    if (!revision) return;
    let live = true;
    getRevisionMetadata(app, revision)
      .then((m) => {
        if (live) setMeta(m);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [app, revision]);
  return meta;
}

function StatusCards({
  app,
  appRef,
  waiting,
  onOperation,
  onAutoSync,
  windows,
}: {
  app: Application;
  appRef: AppRef;
  /** Why a sync window holds the app back, as the controller says it. */
  waiting?: string;
  onOperation: () => void;
  onAutoSync?: (on: boolean) => void;
  /** The sync windows card, last. */
  windows: ComponentChildren;
}) {
  const now = useNow();
  const src = primarySource(app);
  const revision = app.status?.sync?.revision ?? app.status?.sync?.revisions?.[0];
  const commit = useCommit(appRef, revision);
  const op = app.status?.operationState;
  // What the last sync applied: differs from the compared revision after a rollback or a sync to a tag.
  const syncedRevision = op?.syncResult?.revision ?? op?.operation?.sync?.revision;
  const syncedCommit = useCommit(appRef, syncedRevision === revision ? undefined : syncedRevision);
  const health = healthStatus(app);
  const sync = syncStatus(app);
  const target = clusterOf(app, useClusterNames());
  const ns = app.spec.destination.namespace;
  return (
    <div class="cards">
      <section class="card" aria-label="Application health">
        <h2>App health</h2>
        <div class="card-main" data-testid="app-health-status">
          <HealthStatusIcon status={health} size={22} label />
        </div>
        {app.status?.health?.message ? <p class="muted">{app.status.health.message}</p> : null}
        <ResourceCounts app={app} />
      </section>
      <section class="card" aria-label="Sync status">
        <h2>Sync status</h2>
        <div class="card-main" data-testid="app-sync-status">
          <SyncStatusIcon status={sync} size={22} label />
          <span class="muted">
            {sync === 'Synced' ? 'to' : 'from'} {src?.targetRevision ?? 'HEAD'}
          </span>
        </div>
        <p class="commit">
          {revision ? (
            <code title={revision} data-testid="app-revision">
              {shortSha(revision)}
            </code>
          ) : null}{' '}
          {commit?.message ? <span class="commit-message">{commit.message.split('\n')[0]}</span> : null}
        </p>
        {commit?.author ? (
          <p class="muted">
            {commit.author}
            {commit.date ? `, ${timeAgo(commit.date, now)}` : ''}
          </p>
        ) : null}
        <p class="muted">
          <span title={src?.repoURL}>{repoLabel(app)}</span> →{' '}
          <a href={CLUSTERS_PATH} title={target.server} data-testid="app-cluster" onClick={(e) => onLinkClick(e, CLUSTERS_PATH)}>
            {target.name}
          </a>
          {ns ? <span data-testid="app-namespace">/{ns}</span> : null}
        </p>
        <p class="muted" data-testid="auto-sync">
          Auto-sync {isAutoSync(app) ? 'on' : 'off'}
          {onAutoSync ? (
            <>
              {' · '}
              <button type="button" class="link-button" onClick={() => onAutoSync(!isAutoSync(app))}>
                {isAutoSync(app) ? 'Disable auto-sync' : 'Enable auto-sync'}
              </button>
            </>
          ) : null}
        </p>
        {waiting ? (
          <p class="text-warn" data-testid="window-wait">
            Waiting for a sync window: {waiting}
          </p>
        ) : null}
      </section>
      <section class="card" aria-label="Last sync">
        <h2>Last sync</h2>
        <div class="card-main">
          {op ? <PhaseIcon phase={op.phase} size={22} /> : <span class="muted">never</span>}
          <span class="muted" title={formatTime(lastSync(app))}>
            {timeAgo(lastSync(app), now)}
          </span>
        </div>
        {syncedRevision ? (
          <p>
            to{' '}
            <code title={syncedRevision} data-testid="last-sync-revision">
              {shortSha(syncedRevision)}
            </code>
            {syncedCommit?.message ? <span class="muted"> {syncedCommit.message.split('\n')[0]}</span> : null}
          </p>
        ) : null}
        {op?.message ? <p class={op.phase === 'Failed' || op.phase === 'Error' ? 'text-bad' : 'muted'}>{op.message}</p> : null}
        <button type="button" class="link-button" onClick={onOperation}>
          Details
        </button>
      </section>
      {windows}
    </div>
  );
}

function ResourceCounts({ app }: { app: Application }) {
  const resources = (app.status?.resources ?? []).filter((r) => !r.hook);
  if (!resources.length) return null;
  const counts = new Map<string, number>();
  for (const r of resources) {
    const h = r.health?.status;
    if (h) counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  const outOfSync = resources.filter((r) => r.status === 'OutOfSync').length;
  return (
    <p class="muted">
      {resources.length} resource{resources.length === 1 ? '' : 's'}
      {counts.size ? ': ' : ''}
      {Array.from(counts)
        .map(([h, n]) => `${n} ${h}`)
        .join(', ')}
      {outOfSync ? `; ${outOfSync} OutOfSync` : ''}
    </p>
  );
}

function Conditions({ app }: { app: Application }) {
  const conditions = app.status?.conditions ?? [];
  const op = app.status?.operationState;
  const failed = op && (op.phase === 'Failed' || op.phase === 'Error');
  if (!conditions.length && !failed) return null;
  return (
    <div class="conditions" role="alert" aria-label="Conditions">
      {failed ? (
        <p class="banner banner-bad">
          <strong>Sync {op.phase.toLowerCase()}:</strong> {op.message}
        </p>
      ) : null}
      {conditions.map((c, i) => (
        <p key={i} class={`banner ${/Error$/.test(c.type) ? 'banner-bad' : 'banner-warn'}`}>
          <strong>{c.type}:</strong> {c.message}
        </p>
      ))}
    </div>
  );
}
