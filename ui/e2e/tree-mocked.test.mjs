// @ts-check
// The application page against made-up API answers: many Pods fold into "N pods" and unfold on click, the
// resource panel and dialogs close with Escape, resource actions run after a confirmation, a sync window that
// blocks the app shows on its page and tile, and the page reads in dark mode too.
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
    conditions: [
      { type: 'SyncError', message: 'one or more objects failed to apply: ConfigMap "settings" is invalid' },
      { type: 'SyncError', message: "Skipping auto-sync: blocked by sync window: deny window 0 ('0 22 * * *' for 8h, Europe/Amsterdam) is active" },
    ],
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
// The project's windows: a nightly freeze, open now, and weekday office hours, closed now.
const freeze = { kind: 'deny', schedule: '0 22 * * *', duration: '8h', timeZone: 'Europe/Amsterdam' };
const officeHours = { kind: 'allow', schedule: '0 8 * * 1-5', duration: '10h', manualSync: true };
const syncWindows = { activeWindows: [freeze], assignedWindows: [freeze, officeHours], canSync: false };

// The Deployment's actions: resume is disabled (it is not paused), scale is one can-i refuses, pause fails.
const DENIED_ACTION = 'scale';
const deploymentActions = [
  { name: 'restart', disabled: false },
  { name: 'resume', disabled: true },
  { name: 'pause', disabled: false },
  { name: DENIED_ACTION, disabled: false, params: [{ name: 'replicas', type: 'number', default: '1' }] },
];
/** The bodies of the action runs the page sent. @type {any[]} */
const actionRuns = [];

const cm = (/** @type {string} */ data) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'big' }, data: { level: data } });

/**
 * Answers the API calls of the page from the objects above; can-i answers `canI`, except no for the
 * Deployment's `DENIED_ACTION`. @param {Page} p @param {'yes' | 'no'} canI
 */
async function mockApi(p, canI) {
  /** @type {Record<string, unknown>} */
  const answers = {
    '/api/v1/session/userinfo': { loggedIn: true, username: 'mock' },
    '/api/v1/settings': { controllerNamespace: 'argocd' },
    '/api/v1/applications': { metadata: {}, items: [app] },
    '/api/v1/applications/big': app,
    '/api/v1/applications/big/syncwindows': syncWindows,
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
    if (url.pathname.startsWith('/api/v1/account/can-i/')) {
      const denied = decodeURIComponent(url.pathname).includes(`/action/apps/Deployment/${DENIED_ACTION}/`);
      return route.fulfill({ json: { value: denied ? 'no' : canI } });
    }
    if (url.pathname === '/api/v1/applications/big/resource/actions') {
      const deployment = url.searchParams.get('kind') === 'Deployment' && url.searchParams.get('resourceName') === 'api';
      return route.fulfill({ json: { actions: deployment ? deploymentActions : [] } });
    }
    if (url.pathname === '/api/v1/applications/big/resource/actions/v2' && route.request().method() === 'POST') {
      const body = route.request().postDataJSON();
      actionRuns.push(body);
      return body.action === 'pause'
        ? route.fulfill({ status: 400, json: { code: 3, message: 'Deployment api: pause: the action script failed' } })
        : route.fulfill({ json: {} });
    }
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

  test('the resource panel lists the live object\'s actions: disabled ones greyed, those can-i refuses left out', async () => {
    await page.locator('.tree-node[data-kind="Deployment"][data-name="api"]').click();
    const panel = page.getByRole('dialog', { name: 'Deployment api' });
    const toolbar = panel.getByRole('toolbar', { name: 'Actions' });
    await toolbar.getByRole('button', { name: 'restart' }).waitFor();
    assert.deepEqual(await toolbar.getByRole('button').allTextContents(), ['restart', 'resume', 'pause']);
    assert.equal(await toolbar.getByRole('button', { name: 'resume' }).isDisabled(), true);
    assert.equal(await toolbar.getByRole('button', { name: 'restart' }).isDisabled(), false);
    assert.equal(await toolbar.getByRole('button', { name: DENIED_ACTION }).count(), 0);
  });

  test('an action runs only once confirmed, with Argo CD\'s v2 body, and says that it ran', async () => {
    const panel = page.getByRole('dialog', { name: 'Deployment api' });
    const toolbar = panel.getByRole('toolbar', { name: 'Actions' });
    const confirm = panel.getByRole('form', { name: 'Run restart' });
    await toolbar.getByRole('button', { name: 'restart' }).click();
    await confirm.getByText('Run restart on Deployment big/api?').waitFor();
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    assert.equal(actionRuns.length, 0, 'nothing runs before the confirmation');

    await toolbar.getByRole('button', { name: 'restart' }).click();
    const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/resource/actions/v2'));
    await confirm.getByRole('button', { name: 'Run restart' }).click();
    assert.deepEqual((await sent).postDataJSON(), {
      name: 'big',
      namespace: 'big',
      resourceName: 'api',
      version: 'v1',
      kind: 'Deployment',
      group: 'apps',
      action: 'restart',
      resourceActionParameters: [],
    });
    await panel.getByRole('status').filter({ hasText: 'restart ran on Deployment api.' }).waitFor();
    assert.equal(actionRuns.length, 1);
  });

  test('an action the server refuses shows its error', async () => {
    const panel = page.getByRole('dialog', { name: 'Deployment api' });
    await panel.getByRole('toolbar', { name: 'Actions' }).getByRole('button', { name: 'pause' }).click();
    await panel.getByRole('form', { name: 'Run pause' }).getByRole('button', { name: 'Run pause' }).click();
    await panel.getByRole('alert').filter({ hasText: 'Could not run pause on Deployment api: Deployment api: pause: the action script failed' }).waitFor();
    assert.equal(actionRuns.at(-1)?.action, 'pause');
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
  });

  test('the sync windows panel shows the open deny window, that sync is blocked, and why the app waits', async () => {
    const card = page.getByRole('region', { name: 'Sync windows' });
    await card.getByTestId('sync-windows-verdict').filter({ hasText: 'Sync blocked' }).waitFor();
    assert.equal(await card.getAttribute('data-can-sync'), 'false');
    const deny = card.locator('li[data-kind="deny"]');
    assert.equal(await deny.getAttribute('data-active'), 'true');
    assert.match(await deny.innerText(), /0 22 \* \* \* for 8h \(Europe\/Amsterdam\) · active now/);
    const allow = card.locator('li[data-kind="allow"]');
    assert.equal(await allow.getAttribute('data-active'), 'false');
    assert.match(await allow.innerText(), /0 8 \* \* 1-5 for 10h \(UTC\) · manual sync allowed$/);
    await card.getByText('Syncs wait: a deny window is open.').waitFor();
    assert.match(await page.getByTestId('window-wait').innerText(), /Waiting for a sync window: deny window 0 .* is active/);
    // The sync dialog says the server will refuse a sync now.
    await page.getByRole('button', { name: 'Sync', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Sync big' });
    await dialog.getByRole('status').filter({ hasText: 'Syncs wait: a deny window is open.' }).waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });

  test('the app\'s tile says it waits for a sync window, and why', async () => {
    const p = await browser.context.newPage();
    try {
      await mockApi(p, 'yes');
      await p.goto(`${env.url}/applications`);
      const wait = p.locator('.tile[data-app="big"]').getByTestId('window-wait');
      assert.match(await wait.innerText(), /^for a sync window: deny window 0 \('0 22 \* \* \*' for 8h, Europe\/Amsterdam\) is active$/);
    } finally {
      await p.close();
    }
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

  test('when can-i says no, Sync, Rollback, Delete, the auto-sync switch and resource actions are not offered', async () => {
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
      await p.getByRole('tab', { name: 'Resources' }).click();
      // The actions are listed, then each is asked about: none may run, so none shows.
      const asked = p.waitForResponse((r) => decodeURIComponent(r.url()).includes('/action/apps/Deployment/restart/'));
      await p.locator('.tree-node[data-kind="Deployment"][data-name="api"]').click();
      const panel = p.getByRole('dialog', { name: 'Deployment api' });
      await panel.getByRole('tab', { name: 'Summary' }).waitFor();
      await asked;
      await p.waitForTimeout(300);
      assert.equal(await panel.getByTestId('resource-actions').count(), 0);
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
