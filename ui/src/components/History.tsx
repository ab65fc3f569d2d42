// Deployment history, newest first, with rollback to any earlier entry.
import { useEffect, useState } from 'preact/hooks';
import { getRevisionMetadata, rollbackApplication, type AppRef } from '../api/applications';
import type { Application, RevisionHistory, RevisionMetadata } from '../api/types';
import { isAutoSync, operationRunning, qualifiedName, shortSha } from '../lib/application';
import { formatTime, timeAgo, useNow } from '../lib/time';
import { Dialog } from './Dialog';

function revisionOf(h: RevisionHistory): string | undefined {
  return h.revision ?? h.revisions?.[0];
}

function useMetadata(app: AppRef, h: RevisionHistory): RevisionMetadata | undefined {
  const [meta, setMeta] = useState<RevisionMetadata | undefined>(h.revisionMetadata);
  const rev = revisionOf(h);
  useEffect(() => {
    if (h.revisionMetadata || !rev) return;
    let live = true;
    getRevisionMetadata(app, rev)
      .then((m) => {
        if (live) setMeta(m);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [app, rev, h.revisionMetadata]);
  return h.revisionMetadata ?? meta;
}

export function History({
  app,
  appRef,
  canRollback,
  onRolledBack,
  onDisableAutoSync,
}: {
  app: Application;
  appRef: AppRef;
  canRollback: boolean;
  onRolledBack: (app: Application) => void;
  onDisableAutoSync?: () => void;
}) {
  const history = (app.status?.history ?? []).slice().reverse();
  const [confirm, setConfirm] = useState<RevisionHistory>();
  const now = useNow();
  const auto = isAutoSync(app);
  const latestId = history[0]?.id;
  if (history.length === 0) return <p class="empty">No deployments yet.</p>;
  return (
    <>
      {canRollback && auto ? (
        <p class="banner banner-info">
          Rollback needs automated sync off: with it on, berth would sync back to git at once.{' '}
          {onDisableAutoSync ? (
            <button type="button" class="link-button" onClick={onDisableAutoSync}>
              Disable auto-sync
            </button>
          ) : null}
        </p>
      ) : null}
      <table class="table history" data-testid="history">
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Revision</th>
            <th scope="col">Message</th>
            <th scope="col">Author</th>
            <th scope="col">Deployed</th>
            <th scope="col">Initiated by</th>
            {canRollback ? (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {history.map((h) => (
            <HistoryRow
              key={h.id}
              app={appRef}
              entry={h}
              now={now}
              rollback={
                canRollback
                  ? {
                      disabled: auto || h.id === latestId || operationRunning(app),
                      onClick: () => setConfirm(h),
                    }
                  : undefined
              }
            />
          ))}
        </tbody>
      </table>
      {confirm ? (
        <RollbackDialog
          app={appRef}
          entry={confirm}
          onClose={() => setConfirm(undefined)}
          onDone={(started) => {
            setConfirm(undefined);
            onRolledBack(started);
          }}
        />
      ) : null}
    </>
  );
}

function HistoryRow({
  app,
  entry,
  now,
  rollback,
}: {
  app: AppRef;
  entry: RevisionHistory;
  now: number;
  rollback?: { disabled: boolean; onClick: () => void };
}) {
  const meta = useMetadata(app, entry);
  const rev = revisionOf(entry);
  return (
    <tr data-history-id={entry.id}>
      <td>{entry.id}</td>
      <td>
        <code title={rev}>{shortSha(rev)}</code>
        {entry.source?.targetRevision ? <span class="muted"> ({entry.source.targetRevision})</span> : null}
      </td>
      <td class="wrap">{meta?.message?.split('\n')[0] ?? ''}</td>
      <td>{meta?.author ?? ''}</td>
      <td title={formatTime(entry.deployedAt)}>{timeAgo(entry.deployedAt, now)}</td>
      <td>{entry.initiatedBy?.automated ? 'automated' : (entry.initiatedBy?.username ?? '—')}</td>
      {rollback ? (
        <td>
          <button
            type="button"
            class="button small"
            disabled={rollback.disabled}
            onClick={rollback.onClick}
            aria-label={`Roll back to deployment ${entry.id} (${shortSha(rev)})`}
          >
            Rollback
          </button>
        </td>
      ) : null}
    </tr>
  );
}

function RollbackDialog({
  app,
  entry,
  onClose,
  onDone,
}: {
  app: AppRef;
  entry: RevisionHistory;
  onClose: () => void;
  onDone: (app: Application) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async () => {
    setBusy(true);
    try {
      onDone(await rollbackApplication(app, entry.id));
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };
  return (
    <Dialog
      title="Roll back"
      onClose={onClose}
      footer={
        <>
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" class="button primary" disabled={busy} onClick={() => void run()}>
            {busy ? 'Rolling back…' : 'Roll back'}
          </button>
        </>
      }
    >
      {error ? (
        <p class="banner banner-bad" role="alert">
          {error}
        </p>
      ) : null}
      <p>
        Sync <strong>{qualifiedName(app)}</strong> to deployment {entry.id}, revision <code>{shortSha(revisionOf(entry))}</code>?
      </p>
    </Dialog>
  );
}
