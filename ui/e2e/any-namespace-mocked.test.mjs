// @ts-check
// Applications outside the control namespace, against made-up API answers: the list names them
// `namespace/name` and links them to `/applications/{namespace}/{name}`; their page, dialogs and panels send
// `appNamespace` on every call, and can-i asks about `project/namespace/name`. An app of the same name in the
// control namespace keeps `/applications/{name}` and calls without `appNamespace`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { env, launch } from './harness.mjs';

/** @typedef {import('playwright-core').Page} Page */
/** @typedef {import('playwright-core').Request} Request */

const CONTROL = 'argocd';
const TEAM = 'team-a';
const SHA = 'c'.repeat(40);

/** The app `web` of `namespace`; the two differ in where they deploy, so the page shows which one it got. */
function webApp(/** @type {string} */ namespace) {
  return {
    metadata: { name: 'web', namespace, resourceVersion: '3' },
    spec: {
      project: 'default',
      source: { repoURL: 'https://git.example/org/web', path: `apps/${namespace}`, targetRevision: 'main' },
      destination: { server: 'https://kubernetes.default.svc', namespace: `${namespace}-web` },
    },
    status: {
      sync: { status: 'Synced', revision: SHA },
      health: { status: 'Healthy' },
      history: [
        { id: 0, revision: 'd'.repeat(40), deployedAt: '2026-01-01T10:00:00Z', initiatedBy: { username: 'admin' } },
        { id: 1, revision: SHA, deployedAt: '2026-01-02T10:00:00Z', initiatedBy: { username: 'admin' } },
      ],
      resources: [{ group: 'apps', version: 'v1', kind: 'Deployment', namespace: `${namespace}-web`, name: 'api', status: 'Synced', health: { status: 'Healthy' } }],
    },
  };
}

/** @type {Record<string, ReturnType<typeof webApp> | undefined>} */
const apps = { [CONTROL]: webApp(CONTROL), [TEAM]: webApp(TEAM) };

function treeOf(/** @type {string} */ namespace) {
  const ns = `${namespace}-web`;
  return {
    nodes: [
      { group: 'apps', version: 'v1', kind: 'Deployment', namespace: ns, name: 'api', uid: 'dep', health: { status: 'Healthy' } },
      { group: 'apps', version: 'v1', kind: 'ReplicaSet', namespace: ns, name: 'api-1', uid: 'rs', parentRefs: [{ group: 'apps', kind: 'Deployment', namespace: ns, name: 'api', uid: 'dep' }] },
      { version: 'v1', kind: 'Pod', namespace: ns, name: 'api-1-x', uid: 'pod', parentRefs: [{ group: 'apps', kind: 'ReplicaSet', namespace: ns, name: 'api-1', uid: 'rs' }] },
    ],
  };
}

/** Every API request the page sent, in order. @type {Request[]} */
let sent = [];

/** The requests about the app `web` (its routes and its watch) since `from`. */
const aboutWeb = (from = 0) =>
  sent.slice(from).filter((r) => {
    const url = new URL(r.url());
    return url.pathname.startsWith('/api/v1/applications/web') || (url.pathname === '/api/v1/stream/applications' && url.searchParams.get('name') === 'web');
  });
/** The objects can-i was asked about (`/api/v1/account/can-i/{resource}/{action}/{object}`, the action one segment). */
const canIObjects = () =>
  sent
    .map((r) => new URL(r.url()).pathname)
    .filter((p) => p.startsWith('/api/v1/account/can-i/'))
    .map((p) => p.split('/').slice(7).map(decodeURIComponent).join('/'));

/**
 * Answers as berth would: the settings (with `controllerNamespace` unless `settings` says otherwise), the list
 * of both apps, and each app's routes by its `appNamespace` (none: the control namespace).
 * @param {Page} p @param {Record<string, unknown>} [settings]
 */
async function mockApi(p, settings = { controllerNamespace: CONTROL, appsInAnyNamespaceEnabled: true }) {
  p.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith('/api/')) sent.push(r);
  });
  await p.route((url) => url.pathname.startsWith('/api/'), async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    const path = url.pathname;
    if (path === '/api/v1/session/userinfo') return route.fulfill({ json: { loggedIn: true, username: 'mock' } });
    if (path === '/api/v1/settings') return route.fulfill({ json: settings });
    if (path.startsWith('/api/v1/account/can-i/')) return route.fulfill({ json: { value: 'yes' } });
    if (path === '/api/v1/applications') return route.fulfill({ json: { metadata: {}, items: Object.values(apps) } });
    if (path === '/api/v1/stream/applications') return; // stays open, quiet
    const namespace = url.searchParams.get('appNamespace') ?? CONTROL;
    const app = apps[namespace];
    const sub = path.replace(/^\/api\/v1\/applications\/web/, '');
    if (!app || sub === path) return route.fulfill({ status: 404, json: { code: 5, message: `applications.argoproj.io "web" not found in ${namespace}` } });
    /** @type {unknown} */
    let body;
    if (sub === '' && req.method() === 'DELETE') body = {};
    else if (sub === '') body = app;
    else if (sub === '/sync') body = { ...app, operation: { sync: { revision: SHA } }, status: { ...app.status, operationState: { phase: 'Running', message: 'syncing' } } };
    else if (sub === '/rollback') body = app;
    else if (sub === '/operation') body = {};
    else if (sub === '/resource-tree') body = treeOf(namespace);
    else if (sub === '/managed-resources') body = { items: [] };
    else if (sub === '/events') body = { items: [] };
    else if (sub === '/syncwindows') body = { activeWindows: [], assignedWindows: [], canSync: true };
    else if (sub === '/resource') body = { manifest: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'api-1-x' } }) };
    else if (sub === '/resource/actions') body = { actions: url.searchParams.get('kind') === 'Deployment' ? [{ name: 'restart', disabled: false }] : [] };
    else if (sub === '/resource/actions/v2') body = {};
    else if (sub.startsWith('/revisions/')) body = { author: 'Dev <dev@example.com>', message: `web in ${namespace}` };
    return body === undefined ? route.fulfill({ status: 404, json: { code: 5, message: 'not found' } }) : route.fulfill({ json: body });
  });
}

/** Waits for a request of `method` to `sub` of the app `web`. @param {Page} p @param {string} method @param {string} sub */
const requestTo = (p, method, sub) =>
  p.waitForRequest((r) => r.method() === method && new URL(r.url()).pathname === `/api/v1/applications/web${sub}`);

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
/** @type {Page} */
let page;

describe('applications in any namespace (mocked API)', { timeout: 3 * 60_000 }, () => {
  before(async () => {
    browser = await launch();
    page = await browser.context.newPage();
    await mockApi(page);
  });

  after(async () => {
    await browser.close();
  });

  test('the list names the app of team-a "team-a/web" and links it to /applications/team-a/web; search matches it', async () => {
    await page.goto(`${env.url}/applications`);
    const tile = page.locator(`.tile[data-app="${TEAM}/web"]`);
    await tile.waitFor();
    assert.equal(await tile.locator('.tile-name').innerText(), `${TEAM}/web`);
    assert.equal(await tile.getAttribute('href'), `/applications/${TEAM}/web`);
    // The control namespace's app of the same name keeps its short name and route.
    const control = page.locator('.tile[data-app="web"]');
    assert.equal(await control.getAttribute('href'), '/applications/web');

    const search = page.getByLabel('Search applications by name');
    await search.fill('team-a/w');
    await page.getByTestId('summary').filter({ hasText: '1 of 2' }).waitFor();
    assert.equal(await page.locator('.tile').count(), 1);
    await search.fill('web');
    await page.getByTestId('summary').filter({ hasText: '2 applications' }).waitFor();

    await page.getByRole('radio', { name: 'Table' }).click();
    const row = page.locator(`.app-row[data-app="${TEAM}/web"] a`);
    assert.equal(await row.innerText(), `${TEAM}/web`);
    assert.equal(await row.getAttribute('href'), `/applications/${TEAM}/web`);
    await page.getByRole('radio', { name: 'Tiles' }).click();
  });

  test('clicking it opens /applications/team-a/web, whose requests all carry appNamespace=team-a', async () => {
    const from = sent.length;
    await page.locator(`.tile[data-app="${TEAM}/web"]`).click();
    await page.waitForURL(new RegExp(`/applications/${TEAM}/web$`));
    await page.getByRole('heading', { name: `${TEAM}/web` }).waitFor();
    // The page shows team-a's app, not the control namespace's.
    await page.getByText(`in-cluster/${TEAM}-web`).waitFor();
    await page.getByText(`web in ${TEAM}`).first().waitFor();
    await page.locator('[data-permissions="known"]').waitFor();
    await page.locator('.tree-node[data-kind="Deployment"][data-name="api"]').waitFor();

    const asked = aboutWeb(from);
    const paths = new Set(asked.map((r) => new URL(r.url()).pathname));
    for (const want of ['/api/v1/applications/web', '/api/v1/applications/web/resource-tree', '/api/v1/applications/web/syncwindows', `/api/v1/applications/web/revisions/${SHA}/metadata`, '/api/v1/stream/applications']) {
      assert.ok(paths.has(want), `the page asked for ${want} (asked: ${[...paths].join(', ')})`);
    }
    for (const r of asked) assert.equal(new URL(r.url()).searchParams.get('appNamespace'), TEAM, `${r.method()} ${r.url()}`);
  });

  test('can-i asks about default/team-a/web', () => {
    const objects = canIObjects();
    assert.ok(objects.length >= 3, `can-i was asked (${objects.join(', ')})`);
    for (const o of objects) assert.equal(o, `default/${TEAM}/web`);
  });

  test('the diff, events, history and auto-sync calls carry appNamespace=team-a; rollback too', async () => {
    const from = sent.length;
    const managed = requestTo(page, 'GET', '/managed-resources');
    await page.getByRole('tab', { name: 'Diff' }).click();
    await managed;
    const events = requestTo(page, 'GET', '/events');
    await page.getByRole('tab', { name: 'Events' }).click();
    await events;
    await page.getByRole('tab', { name: 'History and rollback' }).click();
    const patch = requestTo(page, 'PATCH', '');
    await page.getByRole('button', { name: 'Enable auto-sync' }).click();
    assert.equal((await patch).postDataJSON().appNamespace, TEAM);

    const rollback = requestTo(page, 'POST', '/rollback');
    await page.getByRole('button', { name: /Roll back to deployment 0/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Roll back' });
    await dialog.getByText(`Sync ${TEAM}/web to deployment 0`).waitFor();
    await dialog.getByRole('button', { name: 'Roll back' }).click();
    assert.deepEqual((await rollback).postDataJSON(), { name: 'web', appNamespace: TEAM, id: 0 });
    await page.getByTestId('operation').waitFor();
    await page.keyboard.press('Escape');
    await page.getByTestId('operation').waitFor({ state: 'detached' });

    const asked = aboutWeb(from);
    assert.ok(asked.length >= 4);
    for (const r of asked) assert.equal(new URL(r.url()).searchParams.get('appNamespace'), TEAM, `${r.method()} ${r.url()}`);
  });

  test("the resource panel's manifest, actions, their can-i and a run carry team-a", async () => {
    await page.getByRole('tab', { name: 'Resources' }).click();
    const from = sent.length;
    const listed = requestTo(page, 'GET', '/resource/actions');
    await page.locator('.tree-node[data-kind="Deployment"][data-name="api"]').click();
    assert.equal(new URL((await listed).url()).searchParams.get('appNamespace'), TEAM);
    const panel = page.getByRole('dialog', { name: 'Deployment api' });
    await panel.getByRole('toolbar', { name: 'Actions' }).getByRole('button', { name: 'restart' }).click();
    const run = requestTo(page, 'POST', '/resource/actions/v2');
    await panel.getByRole('form', { name: 'Run restart' }).getByRole('button', { name: 'Run restart' }).click();
    const ran = await run;
    assert.equal(new URL(ran.url()).searchParams.get('appNamespace'), TEAM);
    assert.equal(ran.postDataJSON().appNamespace, TEAM);
    assert.ok(canIObjects().includes(`default/${TEAM}/web`));
    assert.ok(!canIObjects().some((o) => o !== `default/${TEAM}/web`), 'every can-i names the namespace');
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });

    // A Pod is not managed by the app: its live manifest comes from /resource.
    await page.locator('.tree-node[data-kind="ReplicaSet"][data-name="api-1"]').waitFor();
    await page.locator('.tree-node[data-kind="Pod"][data-name="api-1-x"]').click();
    const pod = page.getByRole('dialog', { name: 'Pod api-1-x' });
    const manifest = requestTo(page, 'GET', '/resource');
    await pod.getByRole('tab', { name: 'Live manifest' }).click();
    await manifest;
    await pod.getByRole('tab', { name: 'Events' }).click();
    await pod.getByText('No events.').waitFor();
    await page.keyboard.press('Escape');
    await pod.waitFor({ state: 'detached' });

    for (const r of aboutWeb(from)) assert.equal(new URL(r.url()).searchParams.get('appNamespace'), TEAM, `${r.method()} ${r.url()}`);
  });

  test('sync POSTs to /api/v1/applications/web/sync?appNamespace=team-a; terminate and delete name team-a too', async () => {
    await page.getByRole('button', { name: 'Sync', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: `Sync ${TEAM}/web` });
    const sync = page.waitForRequest((r) => r.method() === 'POST' && r.url().includes('/sync'));
    await dialog.getByRole('button', { name: 'Synchronize' }).click();
    const posted = await sync;
    assert.equal(posted.url(), `${env.url}/api/v1/applications/web/sync?appNamespace=${TEAM}`);
    assert.equal(posted.postDataJSON().appNamespace, TEAM);

    // The sync runs: its progress offers Terminate.
    const terminate = requestTo(page, 'DELETE', '/operation');
    await page.getByTestId('operation').getByRole('button', { name: 'Terminate' }).click();
    assert.equal(new URL((await terminate).url()).search, `?appNamespace=${TEAM}`);
    await page.keyboard.press('Escape');

    await page.getByRole('button', { name: 'Delete' }).click();
    const del = page.getByRole('dialog', { name: `Delete ${TEAM}/web` });
    await del.getByLabel(/to confirm/).fill('web');
    const deleted = requestTo(page, 'DELETE', '');
    await del.getByRole('button', { name: 'Delete' }).click();
    assert.equal(new URL((await deleted).url()).search, `?cascade=true&appNamespace=${TEAM}`);
    await page.waitForURL(/\/applications$/);
  });

  test('/applications/web opens the control namespace\'s app, without appNamespace; can-i asks about default/web', async () => {
    const p = await browser.context.newPage();
    sent = [];
    try {
      await mockApi(p);
      await p.goto(`${env.url}/applications/web`);
      await p.getByRole('heading', { name: 'web', exact: true }).waitFor();
      await p.getByText(`in-cluster/${CONTROL}-web`).waitFor();
      await p.locator('[data-permissions="known"]').waitFor();
      for (const r of aboutWeb()) {
        const ns = new URL(r.url()).searchParams.get('appNamespace');
        // The watch names the control namespace, so team-a's web does not stream into this page.
        if (new URL(r.url()).pathname === '/api/v1/stream/applications') assert.equal(ns, CONTROL);
        else assert.equal(ns, null, `${r.method()} ${r.url()}`);
      }
      assert.deepEqual(new Set(canIObjects()), new Set(['default/web']));
    } finally {
      await p.close();
    }
  });

  test('a server that does not say its control namespace: every app links to /applications/{namespace}/{name}', async () => {
    const p = await browser.context.newPage();
    try {
      await mockApi(p, { appsInAnyNamespaceEnabled: true });
      await p.goto(`${env.url}/applications`);
      await p.locator(`.tile[data-app="${TEAM}/web"]`).waitFor();
      assert.equal(await p.locator(`.tile[data-app="${CONTROL}/web"]`).getAttribute('href'), `/applications/${CONTROL}/web`);
      assert.equal(await p.locator(`.tile[data-app="${TEAM}/web"]`).getAttribute('href'), `/applications/${TEAM}/web`);
    } finally {
      await p.close();
    }
  });
});
