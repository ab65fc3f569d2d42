// @ts-check
// ApplicationSets against a real berth (hack/test-ui's): a set made through the API, a list generator of two
// elements over the demo repository, rolled out step by step (RollingSync, dev then prod). The sets list shows
// it with its two apps; its page shows its conditions, both apps with their sync and health, and the rollout
// by step as the API reports it; an app's page and tile name their set. A set whose template cannot be
// executed shows its ErrorOccurred message, in the list and on its page.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { Api, artifacts, env, eventually, kubectl, launch, login } from './harness.mjs';

/** @typedef {import('playwright-core').Page} Page */

const NO_REPO = 'set BERTH_DEMO_REPO to the demo git repository (hack/demo makes it)';
const RUN = `${process.pid}`;
const SET = `ui-set-${RUN}`;
const BAD = `ui-set-bad-${RUN}`;
const ENVS = ['dev', 'prod'];
/** Each generated app, `<set>-<env>`, deploying to a namespace of the same name. */
const APPS = ENVS.map((e) => `${SET}-${e}`);
const ROLLOUT = ['Waiting', 'Pending', 'Progressing', 'Healthy'];

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
/** @type {Page} */
let page;
/** @type {Api} */
let api;
/** ErrorOccurred's message on the bad set, as the API reports it. */
let badMessage = '';

/** A list generator of two environments over the demo repository's web app, rolled out dev first. */
function goodSet() {
  return {
    metadata: { name: SET, namespace: env.namespace },
    spec: {
      generators: [{ list: { elements: ENVS.map((e) => ({ env: e })) } }],
      strategy: {
        type: 'RollingSync',
        rollingSync: { steps: ENVS.map((e) => ({ matchExpressions: [{ key: 'env', operator: 'In', values: [e] }] })) },
      },
      template: {
        metadata: { name: `${SET}-{{env}}`, labels: { env: '{{env}}' } },
        spec: {
          project: 'default',
          source: { repoURL: `file://${env.demoRepo ?? ''}`, targetRevision: 'main', path: 'apps/web' },
          destination: { server: 'https://kubernetes.default.svc', namespace: `${SET}-{{env}}` },
          syncPolicy: { syncOptions: ['CreateNamespace=true'] },
        },
      },
    },
  };
}

/** A Go template naming a key its elements lack, with missingkey=error: generation fails, nothing is written. */
function badSet() {
  return {
    metadata: { name: BAD, namespace: env.namespace },
    spec: {
      goTemplate: true,
      goTemplateOptions: ['missingkey=error'],
      generators: [{ list: { elements: [{ env: 'dev' }] } }],
      template: {
        metadata: { name: `${BAD}-{{ .nope }}` },
        spec: {
          project: 'default',
          source: { repoURL: `file://${env.demoRepo ?? ''}`, targetRevision: 'main', path: 'apps/web' },
          destination: { server: 'https://kubernetes.default.svc', namespace: `${BAD}-dev` },
        },
      },
    },
  };
}

/** @param {string} name */
const getSet = (name) => api.call('GET', `/api/v1/applicationsets/${name}`);
/** @param {any} set @param {string} type */
const condition = (set, type) => (set.status?.conditions ?? []).find((/** @type {any} */ c) => c.type === type);

describe('ApplicationSets', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    assert.ok(env.demoRepo, NO_REPO);
    api = await Api.login();
    await api.call('POST', '/api/v1/applicationsets?upsert=true', goodSet());
    await api.call('POST', '/api/v1/applicationsets?upsert=true', badSet());
    // The controller generates both apps and lists them in the set's status before any page is asked, so a
    // set that never generates fails here with what the API says.
    await eventually(
      `${SET} to own ${APPS.join(' and ')} with no error`,
      async () => {
        const set = await getSet(SET);
        const owned = (set.status?.resources ?? []).map((/** @type {any} */ r) => r.name).sort();
        const error = condition(set, 'ErrorOccurred');
        if (JSON.stringify(owned) !== JSON.stringify(APPS) || error?.status !== 'False') throw new Error(JSON.stringify(set.status ?? {}));
        return true;
      },
      120_000,
    );
    badMessage = await eventually(`${BAD}'s ErrorOccurred`, async () => {
      const c = condition(await getSet(BAD), 'ErrorOccurred');
      return c?.status === 'True' ? /** @type {string} */ (c.message) : undefined;
    });
    browser = await launch();
    page = await browser.context.newPage();
    await login(page);
  });

  after(async () => {
    try {
      for (const name of [SET, BAD]) await api.call('DELETE', `/api/v1/applicationsets/${name}`).catch(() => undefined);
      // Kubernetes' garbage collector removes the generated apps; the next scenarios count apps, so they
      // must be gone (deleted here too, without their resources, when the collector is slow).
      await eventually('the generated apps to be gone', async () => {
        /** @type {{items?: any[]}} */
        const { items } = await api.call('GET', '/api/v1/applications');
        const left = (items ?? []).map((a) => a.metadata.name).filter((n) => APPS.includes(n));
        for (const name of left) await api.call('DELETE', `/api/v1/applications/${name}?cascade=false`).catch(() => undefined);
        return left.length === 0;
      }, 60_000);
    } finally {
      kubectl('delete', 'namespace', ...APPS, '--wait=false', '--ignore-not-found');
      await browser.close();
    }
  });

  test('the sets list shows the set with its generator, project and two apps, and the bad set its error', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'ApplicationSets' }).click();
    await page.waitForURL(/\/applicationsets$/);
    await page.getByRole('heading', { name: 'ApplicationSets' }).waitFor();
    const row = page.locator(`tr[data-appset="${SET}"]`);
    await row.getByTestId('appset-apps').filter({ hasText: /^2$/ }).waitFor();
    assert.equal((await row.getByTestId('appset-project').innerText()).trim(), 'default');
    assert.equal((await row.getByTestId('appset-generators').innerText()).trim(), 'list');
    assert.equal(await row.getByTestId('appset-health').locator('[data-health]').count(), 1, 'a health rollup');
    assert.equal(await row.getByTestId('appset-error').count(), 0, 'no error on the good set');
    assert.equal(await row.locator('[data-condition="ParametersGenerated"]').getAttribute('data-status'), 'True');

    const bad = page.locator(`tr[data-appset="${BAD}"]`);
    await bad.getByTestId('appset-error').filter({ hasText: badMessage }).waitFor();
    assert.equal(await bad.getAttribute('class'), 'error', 'the bad set stands out');
    assert.equal((await bad.getByTestId('appset-apps').innerText()).trim(), '0');
    await page.screenshot({ path: join(artifacts, 'applicationsets.png') });
  });

  test('the set page shows its conditions, both apps with sync and health, and the rollout by step', async () => {
    await page.goto(`${env.url}/applicationsets`);
    await page.locator(`tr[data-appset="${SET}"]`).getByRole('link', { name: SET }).click();
    await page.waitForURL(new RegExp(`/applicationsets/${SET}$`));
    await page.getByRole('heading', { name: SET }).waitFor();

    const conditions = page.getByTestId('appset-conditions');
    await conditions.locator('tr[data-condition="ErrorOccurred"][data-status="False"]').waitFor();
    await conditions.locator('tr[data-condition="ParametersGenerated"][data-status="True"]').waitFor();
    await conditions.locator('tr[data-condition="ResourcesUpToDate"][data-status="True"]').waitFor();
    assert.equal(await page.getByTestId('appset-error').count(), 0);

    // Each app as the set's status reports it: its sync and health, and a link to its page.
    const set = await getSet(SET);
    for (const name of APPS) {
      const row = page.getByTestId('appset-apps').locator(`tr[data-app="${name}"]`);
      await row.waitFor();
      assert.equal(await row.getByRole('link', { name }).getAttribute('href'), `/applications/${name}`);
      const listed = (set.status?.resources ?? []).find((/** @type {any} */ r) => r.name === name);
      assert.ok(['Synced', 'OutOfSync', 'Unknown'].includes(await row.getByTestId('app-sync').locator('[data-sync]').getAttribute('data-sync') ?? ''));
      assert.ok(await row.getByTestId('app-health').locator('[data-health]').getAttribute('data-health'), `${name}'s health (${JSON.stringify(listed?.health)})`);
    }

    // The rollout: dev in step 1, prod in step 2, each app's state the one the API reports (both move on as
    // the controller syncs, so they are compared until they agree).
    const rollout = page.getByTestId('appset-rollout');
    for (const [i, name] of APPS.entries()) {
      await rollout.locator(`[data-step="${i + 1}"] [data-rollout-app="${name}"]`).waitFor();
    }
    await eventually('the rollout shown as the API reports it', async () => {
      const s = await getSet(SET);
      /** @type {any[]} */
      const statuses = s.status?.applicationStatus ?? [];
      for (const name of APPS) {
        const want = statuses.find((a) => a.application === name);
        if (!want || !ROLLOUT.includes(want.status)) return false;
        const shown = await rollout.locator(`[data-step="${want.step}"] [data-rollout-app="${name}"]`).getAttribute('data-status', { timeout: 1_000 });
        if (shown !== want.status) return false;
      }
      const current = statuses.filter((a) => a.status !== 'Healthy').map((a) => Number(a.step)).sort((x, y) => x - y)[0];
      return (await rollout.getAttribute('data-current-step')) === (current === undefined ? '' : String(current));
    }, 30_000);
    await page.screenshot({ path: join(artifacts, 'applicationset.png') });
  });

  test('an app page and its tile name the set, linking to its page', async () => {
    const app = APPS[0] ?? '';
    await page.goto(`${env.url}/applicationsets/${SET}`);
    await page.getByTestId('appset-apps').getByRole('link', { name: app }).click();
    await page.waitForURL(new RegExp(`/applications/${app}$`));
    const named = page.getByTestId('app-set');
    await named.waitFor();
    assert.equal((await named.innerText()).trim(), `ApplicationSet: ${SET}`);
    await named.getByRole('link', { name: SET }).click();
    await page.waitForURL(new RegExp(`/applicationsets/${SET}$`));

    await page.goto(`${env.url}/applications`);
    const cell = page.locator('.tile-cell').filter({ has: page.locator(`.tile[data-app="${app}"]`) });
    const tileSet = cell.getByTestId('tile-set');
    await tileSet.waitFor();
    assert.equal((await tileSet.innerText()).trim(), `ApplicationSet: ${SET}`);
    await page.screenshot({ path: join(artifacts, 'list-applicationset-tile.png') });
    assert.equal(await page.locator(`.tile-cell:has(.tile[data-app="${env.app}"]) [data-testid="tile-set"]`).count(), 0, `${env.app} has no set`);
    await tileSet.click();
    await page.waitForURL(new RegExp(`/applicationsets/${SET}$`));
  });

  test('a set whose template fails shows ErrorOccurred as an error with its message', async () => {
    await page.goto(`${env.url}/applicationsets/${BAD}`);
    const banner = page.getByTestId('appset-error');
    await banner.waitFor();
    assert.ok((await banner.innerText()).includes(badMessage), `the banner says "${badMessage}"`);
    assert.match(badMessage, /nope/, 'the message names the missing key');
    const row = page.getByTestId('appset-conditions').locator('tr[data-condition="ErrorOccurred"]');
    assert.equal(await row.getAttribute('data-status'), 'True');
    assert.equal(await row.getAttribute('class'), 'error');
    assert.equal((await row.getByTestId('condition-message').innerText()).trim(), badMessage.trim());
    await page.getByText('No applications: the set has generated none (yet).').waitFor();
    await page.screenshot({ path: join(artifacts, 'applicationset-error.png') });
  });
});
