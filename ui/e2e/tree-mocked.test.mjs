// @ts-check
// The application page against made-up API answers: many Pods fold into "N pods" and unfold on click, the
// resource panel and dialogs close with Escape, and the page reads in dark mode too.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { artifacts, env, launch } from './harness.mjs';

/** @typedef {import('playwright-core').Page} Page */

const PODS = 8;
const app = {
  metadata: { name: 'big', namespace: 'argocd', resourceVersion: '7' },
  spec: {
    project: 'default',
    source: { repoURL: 'https://git.example/org/big', path: 'apps/big', targetRevision: 'main' },
    destination: { server: 'https://kubernetes.default.svc', namespace: 'big' },
    syncPolicy: { automated: { prune: true } },
  },
  status: {
    sync: { status: 'OutOfSync', revision: 'a'.repeat(40) },
    health: { status: 'Degraded' },
    history: [
      { id: 0, revision: 'b'.repeat(40), deployedAt: '2026-01-01T10:00:00Z', initiatedBy: { username: 'admin' } },
      { id: 1, revision: 'a'.repeat(40), deployedAt: '2026-01-02T10:00:00Z', initiatedBy: { automated: true } },
    ],
    conditions: [{ type: 'SyncError', message: 'one or more objects failed to apply: ConfigMap "settings" is invalid' }],
    resources: [
      { group: 'apps', version: 'v1', kind: 'Deployment', namespace: 'big', name: 'api', status: 'Synced', health: { status: 'Degraded' } },
      { version: 'v1', kind: 'ConfigMap', namespace: 'big', name: 'settings', status: 'OutOfSync' },
    ],
    operationState: {
      phase: 'Failed',
      message: 'one or more objects failed to apply',
      finishedAt: new Date().toISOString(),
      syncResult: { revision: 'a'.repeat(40), resources: [{ kind: 'ConfigMap', namespace: 'big', name: 'settings', status: 'SyncFailed', message: 'invalid', syncPhase: 'Sync' }] },
    },
  },
};

const pods = Array.from({ length: PODS }, (_, i) => ({
  version: 'v1',
  kind: 'Pod',
  namespace: 'big',
  name: `api-7d9f-${i}`,
  uid: `pod-${i}`,
  health: { status: i === 0 ? 'Degraded' : 'Healthy' },
  info: [{ name: 'Status Reason', value: i === 0 ? 'CrashLoopBackOff' : 'Running' }],
  parentRefs: [{ group: 'apps', kind: 'ReplicaSet', namespace: 'big', name: 'api-7d9f', uid: 'rs' }],
}));
const tree = {
  nodes: [
    { group: 'apps', version: 'v1', kind: 'Deployment', namespace: 'big', name: 'api', uid: 'dep', health: { status: 'Degraded' }, info: [{ name: 'Ready', value: `${PODS - 1}/${PODS}` }] },
    { group: 'apps', version: 'v1', kind: 'ReplicaSet', namespace: 'big', name: 'api-7d9f', uid: 'rs', health: { status: 'Degraded' }, parentRefs: [{ group: 'apps', kind: 'Deployment', namespace: 'big', name: 'api', uid: 'dep' }] },
    ...pods,
  ],
};
const cm = (/** @type {string} */ data) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'big' }, data: { level: data } });

/** Answers the API calls of the page from the objects above; can-i answers `canI`. @param {Page} p @param {'yes' | 'no'} canI */
async function mockApi(p, canI) {
  /** @type {Record<string, unknown>} */
  const answers = {
    '/api/v1/session/userinfo': { loggedIn: true, username: 'mock' },
    '/api/v1/applications/big': app,
    '/api/v1/applications/big/resource-tree': tree,
    '/api/v1/applications/big/managed-resources': {
      items: [
        { group: 'apps', kind: 'Deployment', namespace: 'big', name: 'api', liveState: '{"kind":"Deployment"}', targetState: '{"kind":"Deployment"}', normalizedLiveState: '{"kind":"Deployment"}', predictedLiveState: '{"kind":"Deployment"}' },
        { kind: 'ConfigMap', namespace: 'big', name: 'settings', liveState: cm('info'), targetState: cm('debug'), normalizedLiveState: cm('info'), predictedLiveState: cm('debug') },
      ],
    },
    '/api/v1/applications/big/events': { items: [] },
  };
  await p.route((url) => url.pathname.startsWith('/api/'), async (route) => {
    const url = new URL(route.request().url());
    if (url.pathname.startsWith('/api/v1/account/can-i/')) return route.fulfill({ json: { value: canI } });
    if (url.pathname.includes('/revisions/')) return route.fulfill({ json: { author: 'Dev <dev@example.com>', message: 'api: more replicas' } });
    if (url.pathname === '/api/v1/stream/applications') return; // stays open, quiet
    const body = answers[url.pathname];
    return body ? route.fulfill({ json: body }) : route.fulfill({ status: 404, json: { code: 5, message: 'not found' } });
  });
}

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
/** @type {Page} */
let page;

describe('application page (mocked API)', { timeout: 3 * 60_000 }, () => {
  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    await mockApi(page, 'yes');
  });

  after(async () => {
    await browser.close();
  });

  test(`more than 5 pods under one parent fold into "${PODS} pods", and unfold on click`, async () => {
    await page.goto(`${env.url}/applications/big`);
    const group = page.locator(`.tree-node.group[data-name="${PODS} pods"]`);
    await group.waitFor();
    assert.equal(await group.getAttribute('data-parents'), 'ReplicaSet/api-7d9f');
    assert.equal(await page.locator('.tree-node[data-kind="Pod"]:not(.group)').count(), 0);
    await group.click();
    await page.locator('.tree-node[data-kind="Pod"][data-name="api-7d9f-7"]').waitFor();
    assert.equal(await page.locator('.tree-node[data-kind="Pod"]').count(), PODS);
    await page.getByRole('button', { name: /Fold the pods/ }).click();
    await group.waitFor();
  });

  test('errors show prominently: the failed sync and the condition', async () => {
    const alerts = page.getByRole('alert', { name: 'Conditions' });
    await alerts.filter({ hasText: 'Sync failed' }).waitFor();
    await alerts.filter({ hasText: 'SyncError' }).waitFor();
  });

  test('the resource panel shows the diff of one object and closes with Escape, focus back on its node', async () => {
    // The ConfigMap is in git but not in the tree (not created yet): it still shows, as Missing.
    const node = page.locator('.tree-node[data-kind="ConfigMap"][data-name="settings"]');
    await node.click();
    const panel = page.getByRole('dialog', { name: 'ConfigMap settings' });
    await panel.getByRole('tab', { name: 'Diff' }).click();
    await panel.locator('.diff-line.del').filter({ hasText: 'level: info' }).waitFor();
    await panel.locator('.diff-line.add').filter({ hasText: 'level: debug' }).waitFor();
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-name')), 'settings');
  });

  test('the sync dialog lists the resources and closes with Escape', async () => {
    await page.getByRole('button', { name: 'Sync', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Sync big' });
    await dialog.getByText('Resources (2 of 2)').waitFor();
    await dialog.getByRole('button', { name: 'Out of sync' }).click();
    await dialog.getByText('Resources (1 of 2)').waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    // The same user with can-i yes does see Rollback (off while auto-sync is on).
    await page.getByRole('tab', { name: 'History and rollback' }).click();
    assert.equal(await page.getByRole('button', { name: /Roll back/ }).count(), 2);
    await page.getByRole('tab', { name: 'Resources' }).click();
  });

  test('when can-i says no, Sync, Rollback, Delete and the auto-sync switch are not offered', async () => {
    const p = await browser.context.newPage();
    try {
      await mockApi(p, 'no');
      await p.goto(`${env.url}/applications/big`);
      await p.locator('[data-permissions="known"]').waitFor();
      assert.equal(await p.getByRole('button', { name: 'Sync', exact: true }).count(), 0);
      assert.equal(await p.getByRole('button', { name: 'Delete' }).count(), 0);
      assert.equal(await p.getByRole('button', { name: /auto-sync/ }).count(), 0);
      await p.getByRole('button', { name: 'Refresh', exact: true }).waitFor();
      await p.getByRole('tab', { name: 'History and rollback' }).click();
      await p.getByTestId('history').locator('tr[data-history-id="0"]').waitFor();
      assert.equal(await p.getByRole('button', { name: /Roll back/ }).count(), 0);
    } finally {
      await p.close();
    }
  });

  test('dark mode', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--bg').trim());
    assert.equal(bg, '#11151b');
    await page.screenshot({ path: join(artifacts, 'app-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  test('delete asks for the name and whether the resources go too', async () => {
    await page.getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete big' });
    const confirm = dialog.getByRole('button', { name: 'Delete' });
    assert.equal(await confirm.isDisabled(), true, 'disabled until the name is typed');
    await dialog.getByLabel('Keep them running').check();
    await dialog.getByLabel(/to confirm/).fill('big');
    const sent = page.waitForRequest((r) => r.method() === 'DELETE');
    await confirm.click();
    assert.equal(new URL((await sent).url()).search, '?cascade=false');
    await page.waitForURL(/\/applications$/);
  });
});
