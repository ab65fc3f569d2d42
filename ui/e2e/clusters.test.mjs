// @ts-check
// Many clusters against a real berth (hack/test-ui's): `web` deploys in-cluster and `web-remote` to a second,
// independent cluster added with `berth cluster add` as `remote`. The clusters page lists both connected, with
// their versions and one app each; the list's cluster facet narrows the list to the remote's app and back, the
// URL carrying it; a tile and the app page name each app's cluster.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { Api, artifacts, env, eventually, kubectl, launch, login } from './harness.mjs';

/** @typedef {import('playwright-core').Page} Page */

const APP = env.app;
const REMOTE = process.env.BERTH_REMOTE_CLUSTER ?? 'remote';
const REMOTE_APP = process.env.BERTH_REMOTE_APP ?? 'web-remote';
/** Where web-remote deploys on the remote cluster, and that cluster's kubeconfig (to check it from there). */
const REMOTE_NAMESPACE = process.env.BERTH_REMOTE_NAMESPACE;
const REMOTE_KUBECONFIG = process.env.BERTH_REMOTE_KUBECONFIG;
const IN_CLUSTER = 'in-cluster';
/** A version as Argo CD shows it: major.minor. */
const VERSION = /^1\.\d+$/;

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
/** @type {Page} */
let page;
/** @type {Api} */
let api;
/** The server URL of each cluster, by name, as berth lists it. @type {Record<string, string>} */
const servers = {};

/** @param {Page} p */
const summary = (p) => p.getByTestId('summary').locator('strong');
const tile = (/** @type {string} */ app) => page.locator(`.tile[data-app="${app}"]`);

describe('many clusters', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    api = await Api.login();
    // berth connects to a cluster once an app deploys there: both are connected and counted before the page is
    // asked, so a slow first connection fails here with the state berth reports.
    await eventually(
      `${IN_CLUSTER} and ${REMOTE} connected, with a version and one application each`,
      async () => {
        /** @type {{items: any[]}} */
        const { items } = await api.call('GET', '/api/v1/clusters');
        const state = [IN_CLUSTER, REMOTE].map((name) => {
          const c = items.find((i) => i.name === name);
          return { name, server: c?.server, status: c?.info?.connectionState?.status, message: c?.info?.connectionState?.message, version: c?.info?.serverVersion, apps: c?.info?.applicationsCount };
        });
        if (!state.every((c) => c.status === 'Successful' && VERSION.test(c.version ?? '') && c.apps === 1)) {
          throw new Error(JSON.stringify(state));
        }
        for (const c of state) servers[c.name] = c.server;
        return true;
      },
      180_000,
    );
    browser = await launch();
    page = await browser.context.newPage();
    await login(page);
  });

  after(async () => {
    await browser.close();
  });

  test(`the clusters page lists ${IN_CLUSTER} and ${REMOTE}: connected, their versions, one application each`, async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Clusters' }).click();
    await page.waitForURL(/\/settings\/clusters$/);
    await page.getByRole('heading', { name: 'Clusters' }).waitFor();
    for (const name of [IN_CLUSTER, REMOTE]) {
      const row = page.locator(`tr[data-cluster="${name}"]`);
      await row.getByTestId('cluster-connection').locator('[data-connection="Successful"]').waitFor({ timeout: 30_000 });
      assert.equal(await row.getAttribute('data-server'), servers[name]);
      assert.match((await row.getByTestId('cluster-version').innerText()).trim(), VERSION, `${name}'s version`);
      assert.equal((await row.getByTestId('cluster-apps').innerText()).trim(), '1', `${name}'s applications`);
      assert.equal(await row.getByTestId('cluster-message').count(), 0, `${name}: no failure message`);
    }
    assert.notEqual(servers[REMOTE], servers[IN_CLUSTER], 'two clusters, two API servers');
    await page.screenshot({ path: join(artifacts, 'clusters.png') });

    // The count leads to the list of the cluster's applications.
    await page.locator(`tr[data-cluster="${REMOTE}"]`).getByTestId('cluster-apps').getByRole('link').click();
    await page.waitForURL((url) => url.pathname === '/applications' && url.searchParams.get('clusters') === REMOTE);
    await tile(REMOTE_APP).waitFor();
    assert.equal(await tile(APP).count(), 0, `${APP} (${IN_CLUSTER}) is filtered out`);
  });

  test(`the list's cluster facet narrows the list to ${REMOTE}'s application and back, in the URL too`, async () => {
    await page.goto(`${env.url}/applications`);
    await tile(APP).waitFor();
    await tile(REMOTE_APP).waitFor();
    const facet = page.locator('fieldset.facet').filter({ has: page.locator('legend', { hasText: 'Clusters' }) });
    const option = (/** @type {string} */ name) => facet.locator('label').filter({ has: page.locator('.facet-value', { hasText: name }) });
    // Each cluster by its name (web-remote names it; web gives the in-cluster server's URL), one app each.
    assert.equal(await option(IN_CLUSTER).locator('.facet-count').innerText(), '1');
    assert.equal(await option(REMOTE).locator('.facet-count').innerText(), '1');
    const total = await summary(page).innerText();

    await option(REMOTE).locator('input').check();
    await summary(page).filter({ hasText: `1 of ${total}` }).waitFor();
    await tile(REMOTE_APP).waitFor();
    assert.equal(await tile(APP).count(), 0);
    // The query follows the filter just after the list is drawn (an effect): waited for, not raced.
    await page.waitForFunction((want) => new URL(location.href).searchParams.get('clusters') === want, REMOTE);
    await page.screenshot({ path: join(artifacts, 'list-cluster-facet.png') });

    // The URL alone brings the filter back.
    await page.reload();
    await tile(REMOTE_APP).waitFor();
    assert.equal(await tile(APP).count(), 0);
    assert.equal(await option(REMOTE).locator('input').isChecked(), true);

    await option(REMOTE).locator('input').uncheck();
    await tile(APP).waitFor();
    await tile(REMOTE_APP).waitFor();
    await summary(page).filter({ hasText: new RegExp(`^${total}$`) }).waitFor();
    await page.waitForFunction(() => !new URL(location.href).searchParams.has('clusters'));
  });

  test('a tile and the app page name the cluster', async () => {
    await page.goto(`${env.url}/applications`);
    // The server's URL comes with the clusters list: the name shows at once, the URL as the list has come.
    const remoteCluster = tile(REMOTE_APP).locator(`[data-testid="tile-cluster"][title="${servers[REMOTE]}"]`);
    await remoteCluster.waitFor();
    assert.equal((await remoteCluster.innerText()).trim(), REMOTE);
    assert.equal((await tile(APP).getByTestId('tile-cluster').innerText()).trim(), IN_CLUSTER);
    await page.getByRole('radio', { name: 'Table' }).click();
    await page.locator(`.app-row[data-app="${REMOTE_APP}"]`).filter({ hasText: REMOTE }).waitFor();
    await page.getByRole('radio', { name: 'Tiles' }).click();

    await tile(REMOTE_APP).click();
    await page.waitForURL(new RegExp(`/applications/${REMOTE_APP}$`));
    const named = page.locator(`[data-testid="app-cluster"][title="${servers[REMOTE]}"]`);
    await named.waitFor();
    assert.equal((await named.innerText()).trim(), REMOTE);
    // It deployed there: synced, and its Deployment on the remote API server.
    await page.getByTestId('app-sync-status').filter({ hasText: 'Synced' }).waitFor({ timeout: 120_000 });
    if (REMOTE_NAMESPACE && REMOTE_KUBECONFIG) {
      const deployment = await eventually(`the Deployment of ${REMOTE_APP} on ${REMOTE}`, () =>
        kubectl('--kubeconfig', REMOTE_KUBECONFIG, '-n', REMOTE_NAMESPACE, 'get', 'deployment', 'web', '-o', 'name'),
      );
      assert.equal(deployment.trim(), 'deployment.apps/web');
    }
    await page.screenshot({ path: join(artifacts, 'app-remote.png') });
    await named.click();
    await page.waitForURL(/\/settings\/clusters$/);
  });
});
