// The side panel of one resource: its actions, summary, live and desired manifests, their diff, its events.
import { Fragment } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { getResourceManifest, type AppRef } from '../api/applications';
import type { ResourceDiff } from '../api/types';
import { desiredYaml, diffItem, liveYaml } from '../lib/manifests';
import { stateToYaml } from '../lib/yaml';
import { formatTime } from '../lib/time';
import { resourceKey, type GraphNode } from '../lib/tree';
import { ResourceActions } from './Actions';
import { Dialog } from './Dialog';
import { DiffList } from './DiffView';
import { Events } from './Events';
import { HealthStatusIcon, SyncStatusIcon } from './Status';
import { TabPanel, Tabs } from './Tabs';

type PanelTab = 'summary' | 'live' | 'desired' | 'diff' | 'events';

interface Props {
  app: AppRef;
  /** The app's project: the user's permissions on it decide which actions are offered. */
  project: string;
  node: GraphNode;
  managed: ResourceDiff | undefined;
  managedLoading: boolean;
  version?: string;
  onClose: () => void;
}

export function ResourcePanel({ app, project, node, managed, managedLoading, version, onClose }: Props) {
  const [tab, setTab] = useState<PanelTab>('summary');
  const items = useMemo(() => (managed ? [diffItem(managed)] : []), [managed]);
  const tabs: { id: PanelTab; label: string }[] = [
    { id: 'summary', label: 'Summary' },
    { id: 'live', label: 'Live manifest' },
    { id: 'desired', label: 'Desired manifest' },
    { id: 'diff', label: 'Diff' },
    { id: 'events', label: 'Events' },
  ];
  // A node the app does not manage itself (a ReplicaSet, a Pod): its live manifest from the cluster.
  const [owned, setOwned] = useState<{ text?: string; error?: string }>({});
  useEffect(() => {
    if (node.managed || node.members || tab !== 'live') return;
    const abort = new AbortController();
    getResourceManifest(app, node, abort.signal).then(
      (text) => setOwned({ text: stateToYaml(text) }),
      (e: unknown) => {
        if (!abort.signal.aborted) setOwned({ error: e instanceof Error ? e.message : String(e) });
      },
    );
    return () => abort.abort();
  }, [app, node, tab, version]);
  const ownedLive = owned.text ? (
    <Manifest text={owned.text} empty="Not in the cluster." />
  ) : owned.error ? (
    <p class="empty">{owned.error}</p>
  ) : (
    <p class="empty">Loading the live manifest…</p>
  );
  const noManifest = managedLoading ? (
    <p class="empty">Loading manifests…</p>
  ) : (
    <p class="empty">
      berth keeps manifests of the resources it manages; {node.kind} {node.name} is owned by another resource.
    </p>
  );
  return (
    <Dialog
      variant="drawer"
      title={`${node.kind} ${node.name}`}
      onClose={onClose}
      aside={
        <span class="dialog-status">
          {node.health ? <HealthStatusIcon status={node.health} label /> : null}
          {node.sync ? <SyncStatusIcon status={node.sync} label /> : null}
        </span>
      }
    >
      {/* Actions run on the live object: none for one not created yet, nor for a folded group. */}
      {node.uid && !node.members ? (
        <ResourceActions
          key={resourceKey(node)}
          app={app}
          project={project}
          target={{ namespace: node.namespace, name: node.name, group: node.group, version: node.version, kind: node.kind }}
          version={version}
        />
      ) : null}
      <Tabs tabs={tabs} current={tab} onChange={setTab} label="Resource details" idPrefix="resource" />
      <TabPanel idPrefix="resource" current={tab}>
        {tab === 'summary' ? (
          <dl class="fields">
            <dt>Kind</dt>
            <dd>{node.group ? `${node.kind}.${node.group}` : node.kind}</dd>
            <dt>Name</dt>
            <dd>{node.name}</dd>
            <dt>Namespace</dt>
            <dd>{node.namespace || '—'}</dd>
            {node.uid ? (
              <>
                <dt>UID</dt>
                <dd>
                  <code>{node.uid}</code>
                </dd>
              </>
            ) : null}
            <dt>Created</dt>
            <dd>{formatTime(node.createdAt)}</dd>
            <dt>Health</dt>
            <dd>
              {node.health ?? '—'}
              {node.healthMessage ? <span class="muted"> — {node.healthMessage}</span> : null}
            </dd>
            <dt>Sync</dt>
            <dd>
              {node.sync ?? 'not managed by the app'}
              {node.requiresPruning ? <span class="muted"> — not in git any more, pruned at the next sync with prune</span> : null}
            </dd>
            {node.info.map((i) => (
              <Fragment key={i.name}>
                <dt>{i.name}</dt>
                <dd>{i.value}</dd>
              </Fragment>
            ))}
            {node.images.length ? (
              <>
                <dt>Images</dt>
                <dd>
                  {node.images.map((i) => (
                    <code key={i} class="block">
                      {i}
                    </code>
                  ))}
                </dd>
              </>
            ) : null}
          </dl>
        ) : null}
        {tab === 'live' ? (
          managed ? (
            <Manifest text={liveYaml(managed)} empty="Not in the cluster." />
          ) : !node.managed && !node.members ? (
            ownedLive
          ) : (
            noManifest
          )
        ) : null}
        {tab === 'desired' ? (
          managed ? (
            <Manifest text={desiredYaml(managed)} empty="Not in git: pruned at the next sync with prune." />
          ) : (
            noManifest
          )
        ) : null}
        {tab === 'diff' ? managed ? <DiffList items={items} emptyText="The live object matches git." /> : noManifest : null}
        {tab === 'events' ? (
          <Events
            app={app}
            version={version}
            filter={{ resourceNamespace: node.namespace, resourceName: node.name, resourceUID: node.uid }}
          />
        ) : null}
      </TabPanel>
    </Dialog>
  );
}

function Manifest({ text, empty }: { text: string; empty: string }) {
  if (!text) return <p class="empty">{empty}</p>;
  return (
    <pre class="manifest" tabIndex={0} aria-label="Manifest">
      {text}
    </pre>
  );
}
