// @ts-check
// The scenarios against a running berth (hack/demo's): log in; web is Synced and Healthy with its
// tree; a pushed commit goes OutOfSync and back by auto-sync without a reload; the diff shows the image
// tag; rollback restores the previous one; a read-only user gets no Sync button.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { Api, DemoRepo, artifacts, docsScreenshot, env, eventually, kubectl, kubectlWithInput, launch, login, password } from './harness.mjs';

/** @typedef {import('playwright-core').Page} Page */

const APP = env.app;
const repo = env.demoRepo ? new DemoRepo(env.demoRepo) : undefined;
// Missing setup fails loudly (no scenario is skipped): the demo repository is where the tests push.
const NO_REPO = 'set BERTH_DEMO_REPO to the demo git repository (hack/demo makes it)';

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
/** @type {Page} */
let page;
/** @type {Api} */
let api;
/** @type {unknown} */
let originalAutomated;

const syncStatus = () => page.getByTestId('app-sync-status').locator('.status-text').textContent();
const healthStatus = () => page.getByTestId('app-health-status').locator('.status-text').textContent();
const revisionShown = () => page.getByTestId('app-revision').getAttribute('title');

/** @param {Page} p @param {string} selector @param {string} text */
async function waitForText(p, selector, text, timeout = 60_000) {
  await p.locator(selector).filter({ hasText: text }).first().waitFor({ timeout });
}

describe('berth web UI', { timeout: 15 * 60_000 }, () => {
  before(async () => {
    api = await Api.login();
    const app = await api.app(APP);
    originalAutomated = app.spec.syncPolicy?.automated ?? null;
    // A run that stopped half-way may have left auto-sync off: the scenarios start from git's state.
    if (!originalAutomated) {
      originalAutomated = { prune: true, selfHeal: true };
      await api.mergePatch(APP, { spec: { syncPolicy: { automated: originalAutomated } } });
    }
    browser = await launch();
    page = await browser.context.newPage();
  });

  after(async () => {
    // Auto-sync as it was: berth then syncs the app back to git's newest commit.
    try {
      await api.mergePatch(APP, { spec: { syncPolicy: { automated: originalAutomated } } });
    } finally {
      await browser.close();
    }
  });

  test('logs in with a local account and lists the applications', async () => {
    await page.goto(`${env.url}/applications`);
    await page.waitForURL(/\/login/);
    // A wrong password is refused in place (an unknown name, so no real account gets locked out).
    await page.getByLabel('Username').fill('e2e-nobody');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor();
    assert.match(page.url(), /\/login/);
    await login(page);
    assert.match(page.url(), /\/applications/);
    await page.locator(`.tile[data-app="${APP}"]`).waitFor();
    assert.equal(await page.getByTestId('username').textContent(), env.user);
    await page.screenshot({ path: join(artifacts, 'list.png') });
    await page.getByRole('radio', { name: 'Table' }).click();
    await page.locator(`.app-row[data-app="${APP}"]`).waitFor();
    await page.screenshot({ path: join(artifacts, 'list-table.png') });
    await page.getByRole('radio', { name: 'Tiles' }).click();
  });

  test(`${APP} is Synced and Healthy with the tree Service, Deployment (3/3) → ReplicaSet → Pods`, async () => {
    // Keyboard: the tile opens with Enter.
    await page.locator(`.tile[data-app="${APP}"]`).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`/applications/${APP}$`));
    await waitForText(page, '[data-testid="app-sync-status"]', 'Synced', 120_000);
    await waitForText(page, '[data-testid="app-health-status"]', 'Healthy', 120_000);

    const node = (/** @type {string} */ kind) => page.locator(`.tree-node[data-kind="${kind}"]`);
    await node('Service').first().waitFor();
    assert.equal(await node('Service').first().getAttribute('data-parents'), `Application/${APP}`);
    const deployment = node('Deployment').first();
    await deployment.filter({ hasText: '3/3' }).waitFor({ timeout: 60_000 });
    assert.equal(await deployment.getAttribute('data-parents'), `Application/${APP}`);

    // The ReplicaSet that runs the 3 pods (older ones stay in the tree with none).
    const rsName = await eventually('a ReplicaSet of the Deployment with 3 pods', async () => {
      for (const rs of await node('ReplicaSet').all()) {
        if ((await rs.getAttribute('data-parents')) !== `Deployment/${await deployment.getAttribute('data-name')}`) continue;
        const name = await rs.getAttribute('data-name');
        const pods = await page.locator(`.tree-node[data-kind="Pod"][data-parents="ReplicaSet/${name}"]`).count();
        if (pods === 3) return name;
      }
      return undefined;
    }, 60_000);
    const rsBox = await page.locator(`.tree-node[data-kind="ReplicaSet"][data-name="${rsName}"]`).boundingBox();
    const depBox = await deployment.boundingBox();
    const podBox = await page.locator(`.tree-node[data-kind="Pod"][data-parents="ReplicaSet/${rsName}"]`).first().boundingBox();
    assert.ok(depBox && rsBox && podBox, 'tree nodes have boxes');
    assert.ok(depBox.x < rsBox.x && rsBox.x < podBox.x, 'the tree reads left to right: Deployment → ReplicaSet → Pods');

    // A node opens its side panel; Escape closes it.
    await deployment.click();
    const panel = page.getByRole('dialog', { name: `Deployment ${APP}` });
    await panel.waitFor();
    await panel.getByRole('tab', { name: 'Live manifest' }).click();
    await panel.locator('pre.manifest').filter({ hasText: 'kind: Deployment' }).waitFor();
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
    // A Pod (owned, not managed by the app) shows its live manifest too.
    const pod = page.locator(`.tree-node[data-kind="Pod"][data-parents="ReplicaSet/${rsName}"]`).first();
    const podName = await pod.getAttribute('data-name');
    await pod.click();
    const podPanel = page.getByRole('dialog', { name: `Pod ${podName}` });
    await podPanel.getByRole('tab', { name: 'Live manifest' }).click();
    await podPanel.locator('pre.manifest').filter({ hasText: 'kind: Pod' }).filter({ hasText: `name: ${podName}` }).waitFor();
    await page.keyboard.press('Escape');
    await podPanel.waitFor({ state: 'detached' });

    await page.evaluate(() => /** @type {HTMLElement | null} */ (document.activeElement)?.blur());
    await page.screenshot({ path: join(artifacts, 'app.png') });
    // The README's picture is renewed on request only, so a test run leaves the tree clean.
    if (process.env.BERTH_DOCS_SCREENSHOT === '1') await page.screenshot({ path: docsScreenshot });
  });

  test('a pushed commit turns the app OutOfSync, then auto-sync brings it back to Synced, without a reload', async () => {
    assert.ok(repo, NO_REPO);
    // Every sync status the header shows from now on, and a mark that a reload would wipe.
    await page.evaluate(() => {
      const w = /** @type {any} */ (window);
      w.__berthNoReload = true;
      w.__syncSeen = [];
      const read = () => {
        const s = document.querySelector('[data-testid="app-sync-status"] .status-text')?.textContent;
        if (s && w.__syncSeen[w.__syncSeen.length - 1] !== s) w.__syncSeen.push(s);
      };
      read();
      new MutationObserver(read).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    const image = repo.bumpImage();
    const head = repo.head();
    // The webhook's job in production; here the page's own Refresh button asks berth to look at git.
    await page.getByRole('button', { name: 'Refresh', exact: true }).click();
    await page.waitForFunction(() => /** @type {any} */ (window).__syncSeen.includes('OutOfSync'), null, { timeout: 120_000 });
    await page.waitForFunction(
      (sha) =>
        document.querySelector('[data-testid="app-revision"]')?.getAttribute('title') === sha &&
        document.querySelector('[data-testid="app-sync-status"] .status-text')?.textContent === 'Synced',
      head,
      { timeout: 120_000 },
    );
    assert.equal(await page.evaluate(() => /** @type {any} */ (window).__berthNoReload), true, 'the page was not reloaded');
    const seen = await page.evaluate(() => /** @type {any} */ (window).__syncSeen);
    assert.ok(seen.indexOf('OutOfSync') < seen.lastIndexOf('Synced'), `went OutOfSync then Synced: ${seen.join(' → ')}`);
    await waitForText(page, '.tree-node[data-kind="Deployment"]', '3/3');
    await eventually(`${APP} running ${image}`, async () => (await api.app(APP)).status.summary?.images?.includes(image), 60_000);
  });

  /** @type {{ image: string, head: string }} */
  let deployed;

  test('the diff shows the changed image tag', async () => {
    assert.ok(repo, NO_REPO);
    deployed = { image: repo.image(), head: repo.head() };
    // Auto-sync off from the page, so the change stays to be seen (and rollback is allowed later).
    await page.getByRole('button', { name: 'Disable auto-sync' }).click();
    await waitForText(page, '[data-testid="auto-sync"]', 'Auto-sync off');
    const next = repo.bumpImage();
    await page.getByRole('button', { name: 'Refresh', exact: true }).click();
    await waitForText(page, '[data-testid="app-sync-status"]', 'OutOfSync', 120_000);

    await page.getByRole('tab', { name: 'Diff' }).click();
    const diff = page.getByTestId('diff');
    await diff.locator('.diff-line.del').filter({ hasText: `image: ${deployed.image}` }).waitFor({ timeout: 30_000 });
    await diff.locator('.diff-line.add').filter({ hasText: `image: ${next}` }).waitFor();
    await page.screenshot({ path: join(artifacts, 'diff.png') });
    await page.getByRole('radio', { name: 'Side by side' }).click();
    await diff.locator('.code.del').filter({ hasText: `image: ${deployed.image}` }).waitFor();
    await diff.locator('.code.add').filter({ hasText: `image: ${next}` }).waitFor();
    await page.screenshot({ path: join(artifacts, 'diff-split.png') });

    // The sync dialog applies it; its progress shows live.
    await page.getByRole('button', { name: 'Sync', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: `Sync ${APP}` });
    await dialog.getByRole('button', { name: 'Synchronize' }).click();
    const progress = page.getByTestId('operation');
    await progress.getByTestId('operation-phase').filter({ hasText: 'Succeeded' }).waitFor({ timeout: 120_000 });
    await progress.locator('tr').filter({ hasText: 'Deployment' }).waitFor();
    await page.screenshot({ path: join(artifacts, 'sync.png') });
    await page.keyboard.press('Escape');
    await waitForText(page, '[data-testid="app-sync-status"]', 'Synced', 120_000);
    assert.equal(await revisionShown(), repo.head());
  });

  test('rollback from history restores the previous image', async () => {
    assert.ok(deployed, 'runs after the diff scenario');
    await page.getByRole('tab', { name: 'History and rollback' }).click();
    const history = page.getByTestId('history');
    const row = history.locator('tbody tr').filter({ has: page.locator(`code[title="${deployed.head}"]`) }).first();
    await row.getByRole('button', { name: /Roll back/ }).click();
    await page.getByRole('dialog', { name: 'Roll back' }).getByRole('button', { name: 'Roll back' }).click();
    // The operation panel follows the rollback; the header then tells what was applied.
    await page.getByTestId('operation-phase').filter({ hasText: 'Succeeded' }).waitFor({ timeout: 120_000 });
    await page.keyboard.press('Escape');
    await page.waitForFunction(
      (sha) => document.querySelector('[data-testid="last-sync-revision"]')?.getAttribute('title') === sha,
      deployed.head,
      { timeout: 60_000 },
    );
    // Git has moved on: rolled back means OutOfSync with git, running the previous image.
    await waitForText(page, '[data-testid="app-sync-status"]', 'OutOfSync', 60_000);
    await page.getByRole('tab', { name: 'Resources' }).click();
    await page.locator('.tree-node[data-kind="Deployment"]').first().click();
    const panel = page.getByRole('dialog', { name: `Deployment ${APP}` });
    await panel.getByRole('tab', { name: 'Live manifest' }).click();
    await panel.locator('pre.manifest').filter({ hasText: `image: ${deployed.image}` }).waitFor({ timeout: 60_000 });
    await page.keyboard.press('Escape');
    assert.equal(await syncStatus(), 'OutOfSync');
    assert.ok(await healthStatus());
  });

  test('a read-only user sees no Sync, Rollback or Delete button', async () => {
    const viewer = await readOnlyUser();
    assert.ok(viewer, 'set BERTH_READONLY_USER and BERTH_READONLY_PASSWORD, or give kubectl access to make one');
    const probe = await fetch(`${env.url}/api/v1/account/can-i/applications/get/default/${APP}`, {
      headers: { Authorization: `Bearer ${api.token}` },
    });
    assert.notEqual(probe.status, 404, `berth at ${env.url} has no GET /api/v1/account/can-i (a build older than that endpoint)`);
    // A browser of its own: nothing of the admin's session.
    const second = await launch();
    const p = await second.context.newPage();
    try {
      await login(p, viewer.user, viewer.password);
      await p.goto(`${env.url}/applications/${APP}`);
      await p.getByTestId('app-sync-status').waitFor();
      await p.locator('[data-permissions="known"]').waitFor();
      await p.getByRole('button', { name: 'Refresh', exact: true }).waitFor();
      assert.equal(await p.getByRole('button', { name: 'Sync', exact: true }).count(), 0, 'no Sync button');
      assert.equal(await p.getByRole('button', { name: 'Delete' }).count(), 0, 'no Delete button');
      await p.getByRole('tab', { name: 'History and rollback' }).click();
      await p.getByTestId('history').waitFor();
      assert.equal(await p.getByRole('button', { name: /Roll back/ }).count(), 0, 'no Rollback button');
      await p.screenshot({ path: join(artifacts, 'readonly.png') });
    } finally {
      await second.close();
    }
  });
});

/** @param {string} name @param {Record<string, string>} data @param {boolean} exists */
function upsertConfigMap(name, data, exists) {
  if (exists) return kubectl('-n', env.namespace, 'patch', 'configmap', name, '--type', 'merge', '-p', JSON.stringify({ data })) !== undefined;
  const manifest = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: env.namespace, labels: { 'app.kubernetes.io/part-of': 'argocd' } },
    data,
  };
  return kubectlWithInput(JSON.stringify(manifest), 'create', '-f', '-') !== undefined;
}

/**
 * BERTH_READONLY_USER/PASSWORD, or a local account `e2e-viewer` with role:readonly made through kubectl
 * (argocd-cm, argocd-rbac-cm) and given a password through the API, as an admin would.
 * @returns {Promise<{user: string, password: string} | undefined>}
 */
async function readOnlyUser() {
  if (process.env.BERTH_READONLY_USER && process.env.BERTH_READONLY_PASSWORD) {
    return { user: process.env.BERTH_READONLY_USER, password: process.env.BERTH_READONLY_PASSWORD };
  }
  const user = 'e2e-viewer';
  const pass = 'e2e-viewer-Passw0rd';
  if (kubectl('-n', env.namespace, 'get', 'configmaps', '-o', 'name') === undefined) return undefined;
  const cm = kubectl('-n', env.namespace, 'get', 'configmap', 'argocd-cm', '-o', 'json');
  if (!cm || !JSON.parse(cm).data?.[`accounts.${user}`]) {
    if (!upsertConfigMap('argocd-cm', { [`accounts.${user}`]: 'login' }, !!cm)) return undefined;
  }
  const rbac = kubectl('-n', env.namespace, 'get', 'configmap', 'argocd-rbac-cm', '-o', 'json');
  /** @type {string} */
  const policy = rbac ? (JSON.parse(rbac).data?.['policy.csv'] ?? '') : '';
  const line = `g, ${user}, role:readonly`;
  if (!policy.split('\n').some((l) => l.trim() === line)) {
    const csv = `${policy.trimEnd()}${policy.trim() ? '\n' : ''}${line}\n`;
    if (!upsertConfigMap('argocd-rbac-cm', { 'policy.csv': csv }, !!rbac)) return undefined;
  }
  // The new account shows once berth has read argocd-cm again; then the admin sets its password.
  await eventually(`account ${user} known to berth`, () =>
    api.call('PUT', '/api/v1/account/password', { name: user, currentPassword: password(), newPassword: pass }).then(() => true),
  );
  await eventually(`login as ${user}`, () => Api.login(user, pass), 30_000);
  return { user, password: pass };
}
