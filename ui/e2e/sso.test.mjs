// @ts-check
// SSO against a real berth (hack/test-ui's) and a real Dex of its own: argocd-cm's `url` and `oidc.config`
// name Dex (the client secret in argocd-secret, referenced as `$oidc.dex.clientSecret`), and argocd-rbac-cm
// lets the Dex user's group get the apps of one project only. Through the browser: "Log in via Dex", Dex's
// password form, back in berth logged in as the Dex user with its groups, only the allowed project's app
// listed; logging out ends at the login page. A failed SSO login's `sso_error` shows on the login page, and
// with userLoginsDisabled (that one answer made in the test) only SSO is offered.
// Everything is put back afterwards (argocd-cm, argocd-secret, argocd-rbac-cm, the apps and projects).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Api, DEX_PASSWORD, artifacts, env, eventually, kubectl, kubectlWithInput, launch, startDex } from './harness.mjs';

/** @typedef {import('playwright-core').Page} Page */

const NO_REPO = 'set BERTH_DEMO_REPO to the demo git repository (hack/demo makes it)';
const RUN = `${process.pid}`;
const GROUP = `e2e-sso-team-${RUN}`;
const ROLE = `role:e2e-sso-${RUN}`;
/** The project whose apps the group may get, and one it may not; an app in each, of the same names. */
const ALLOWED = `sso-allowed-${RUN}`;
const OTHER = `sso-other-${RUN}`;
const DEX_USER = { email: `sso-${RUN}@example.com`, username: `sso-user-${RUN}`, groups: [GROUP] };
const CLIENT_ID = 'berth';
const SECRET_KEY = 'oidc.dex.clientSecret';

/** @type {Awaited<ReturnType<typeof launch>> | undefined} */
let browser;
/** @type {Page} */
let page;
/** @type {Api} */
let api;
/** Set by `before` (left undefined when the set-up failed before it). @type {Awaited<ReturnType<typeof startDex>> | undefined} */
let dex;
/** The issuer of that Dex. */
let issuer = '';
/** What the scenarios change, as it was: restored by `after`. */
const saved = {
  /** @type {Record<string, string | null>} */
  cm: {},
  rbacExisted: false,
  /** @type {string | null} */
  policy: null,
};

/** @param {string} name */
function configMap(name) {
  const json = kubectl('-n', env.namespace, 'get', 'configmap', name, '-o', 'json', '--ignore-not-found');
  return json?.trim() ? /** @type {{data?: Record<string, string>}} */ (JSON.parse(json)) : undefined;
}

/** A JSON merge patch of an object in berth's namespace; fails loudly (set-up must not half-happen). */
function patch(/** @type {string} */ kind, /** @type {string} */ name, /** @type {unknown} */ body) {
  const out = kubectl('-n', env.namespace, 'patch', kind, name, '--type', 'merge', '-p', JSON.stringify(body));
  assert.ok(out !== undefined, `kubectl patch ${kind} ${name} in ${env.namespace}`);
}

/** @param {unknown} manifest */
function apply(manifest) {
  const out = kubectlWithInput(JSON.stringify(manifest), 'apply', '--server-side', '--field-manager=berth-test', '-f', '-');
  assert.ok(out !== undefined, 'kubectl apply');
}

/** An AppProject that may deploy the demo repository anywhere. @param {string} name */
function project(name) {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'AppProject',
    metadata: { name, namespace: env.namespace },
    spec: { sourceRepos: ['*'], destinations: [{ server: '*', namespace: '*' }] },
  };
}

/** An app of `proj`, named as it, on the demo repository's web app; never synced (the list is what counts). */
function application(/** @type {string} */ proj) {
  return {
    metadata: { name: proj, namespace: env.namespace },
    spec: {
      project: proj,
      source: { repoURL: `file://${env.demoRepo ?? ''}`, targetRevision: 'main', path: 'apps/web' },
      destination: { server: 'https://kubernetes.default.svc', namespace: proj },
    },
  };
}

/** The list as the server answers `cookie`'s session: the app names it lets that caller see. */
async function appsSeenWith(/** @type {string} */ cookie) {
  const res = await fetch(`${env.url}/api/v1/applications`, { headers: { Cookie: cookie } });
  assert.equal(res.status, 200, `GET /api/v1/applications with the SSO session: ${String(res.status)}`);
  const body = /** @type {{items?: {metadata: {name: string}}[] | null}} */ (await res.json());
  return (body.items ?? []).map((a) => a.metadata.name).sort();
}

/** The browser's `argocd.token` cookie for berth, as a Cookie header, or undefined. */
async function sessionCookie() {
  const cookies = await page.context().cookies(env.url);
  const token = cookies.find((c) => c.name === 'argocd.token' && c.value);
  return token ? `argocd.token=${token.value}` : undefined;
}

describe('SSO through Dex', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    assert.ok(env.demoRepo, NO_REPO);
    assert.ok(kubectl('-n', env.namespace, 'get', 'configmaps', '-o', 'name') !== undefined, `kubectl access to ${env.namespace}`);
    api = await Api.login();
    const clientSecret = randomBytes(24).toString('hex');
    dex = await startDex({ clientID: CLIENT_ID, clientSecret, redirectURI: `${env.url}/auth/callback`, user: DEX_USER });
    issuer = dex.issuer;

    // argocd-cm: berth's URL (the callback's) and the provider; the secret only in argocd-secret.
    const cm = configMap('argocd-cm');
    assert.ok(cm, `argocd-cm in ${env.namespace}`);
    for (const key of ['url', 'oidc.config']) saved.cm[key] = cm.data?.[key] ?? null;
    patch('secret', 'argocd-secret', { data: { [SECRET_KEY]: Buffer.from(clientSecret).toString('base64') } });
    const oidc = [
      'name: Dex',
      `issuer: ${issuer}`,
      `clientID: ${CLIENT_ID}`,
      `clientSecret: $${SECRET_KEY}`,
      'requestedScopes: [openid, profile, email, groups]',
    ].join('\n');
    patch('configmap', 'argocd-cm', { data: { url: env.url, 'oidc.config': `${oidc}\n` } });

    // argocd-rbac-cm: the group may get the allowed project's apps, and nothing else.
    const rbac = configMap('argocd-rbac-cm');
    saved.rbacExisted = !!rbac;
    saved.policy = rbac?.data?.['policy.csv'] ?? null;
    assert.ok(!rbac?.data?.['policy.default'], 'argocd-rbac-cm has no policy.default (the SSO user must see only what its group may)');
    const lines = [`p, ${ROLE}, applications, get, ${ALLOWED}/*, allow`, `g, ${GROUP}, ${ROLE}`];
    const policy = `${(saved.policy ?? '').trimEnd()}${saved.policy?.trim() ? '\n' : ''}${lines.join('\n')}\n`;
    if (rbac) patch('configmap', 'argocd-rbac-cm', { data: { 'policy.csv': policy } });
    else {
      apply({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'argocd-rbac-cm', namespace: env.namespace, labels: { 'app.kubernetes.io/part-of': 'argocd' } },
        data: { 'policy.csv': policy },
      });
    }

    // Two projects, an app in each, made as an admin would.
    for (const name of [ALLOWED, OTHER]) apply(project(name));
    for (const name of [ALLOWED, OTHER]) {
      await eventually(`app ${name} created`, () => api.call('POST', '/api/v1/applications?upsert=true', application(name)).then(() => true));
    }

    // berth reads argocd-cm again: the login page then offers Dex.
    await eventually('berth to offer Dex in its settings', async () => {
      const res = await fetch(`${env.url}/api/v1/settings`);
      const settings = /** @type {{oidcConfig?: {issuer?: string}}} */ (await res.json());
      return settings.oidcConfig?.issuer === issuer;
    });
    browser = await launch();
    page = await browser.context.newPage();
  });

  after(async () => {
    try {
      for (const name of [ALLOWED, OTHER]) await api.call('DELETE', `/api/v1/applications/${name}?cascade=false`).catch(() => undefined);
      await eventually('the apps to be gone', async () => {
        /** @type {{items?: any[] | null}} */
        const { items } = await api.call('GET', '/api/v1/applications');
        return !(items ?? []).some((a) => a.metadata.name === ALLOWED || a.metadata.name === OTHER);
      }, 60_000).catch(() => undefined);
      kubectl('-n', env.namespace, 'delete', 'appproject', ALLOWED, OTHER, '--ignore-not-found', '--wait=false');
      if (saved.rbacExisted) patch('configmap', 'argocd-rbac-cm', { data: { 'policy.csv': saved.policy } });
      else kubectl('-n', env.namespace, 'delete', 'configmap', 'argocd-rbac-cm', '--ignore-not-found');
      if (Object.keys(saved.cm).length) patch('configmap', 'argocd-cm', { data: saved.cm });
      patch('secret', 'argocd-secret', { data: { [SECRET_KEY]: null } });
    } finally {
      await browser?.close();
      await dex?.stop();
    }
  });

  test('the login page offers "Log in via Dex" beside the local form, and shows a failed SSO login', async () => {
    // The link's own words are never shown (anyone can write such a link): only that the login failed.
    await page.goto(`${env.url}/login?sso_error=${encodeURIComponent('Your session expired, call +1 555 0100')}`);
    const alert = page.getByTestId('sso-error');
    await alert.waitFor();
    const said = (await alert.textContent()) ?? '';
    assert.match(said, /Login through SSO failed/);
    assert.doesNotMatch(said, /call \+1/);
    await page.getByRole('link', { name: 'Log in via Dex' }).waitFor();
    await page.getByLabel('Username').waitFor();
    await page.screenshot({ path: join(artifacts, 'sso-login.png') });
  });

  test('with userLoginsDisabled the page offers SSO only (the settings answered by the test)', async () => {
    const p = await page.context().newPage();
    try {
      await p.route('**/api/v1/settings', (route) =>
        route.fulfill({ json: { userLoginsDisabled: true, dexConfig: { connectors: [{ name: 'GitHub', type: 'github' }] } } }),
      );
      await p.goto(`${env.url}/login`);
      await p.getByRole('link', { name: 'Log in via GitHub' }).waitFor();
      assert.equal(await p.getByLabel('Username').count(), 0, 'no local login form');
      assert.equal(await p.getByRole('button', { name: 'Log in', exact: true }).count(), 0, 'no local login button');
    } finally {
      await p.close();
    }
  });

  test('logs in through Dex, sees only the allowed project\'s app, and logs out', async () => {
    // Where the user wanted to go comes back after the provider.
    await page.goto(`${env.url}/applications?search=${RUN}`);
    await page.waitForURL(/\/login\?return=/);
    await page.getByRole('link', { name: 'Log in via Dex' }).click();

    // Dex's own password form.
    await page.waitForURL((url) => url.href.startsWith(issuer));
    await page.locator('input[name="login"]').fill(DEX_USER.email);
    await page.locator('input[name="password"]').fill(DEX_PASSWORD);
    await page.locator('#submit-login').click();

    await page.waitForURL((url) => url.href.startsWith(`${env.url}/applications`), { timeout: 30_000 });
    assert.equal(new URL(page.url()).searchParams.get('search'), RUN, 'back where the user was going');
    const cookie = await sessionCookie();
    assert.ok(cookie, 'the callback set the argocd.token cookie');

    // The server's word first: the session is the Dex user's, in its group, and lists the allowed app only.
    const info = await (await fetch(`${env.url}/api/v1/session/userinfo`, { headers: { Cookie: cookie } })).json();
    assert.equal(info.loggedIn, true);
    assert.equal(info.iss, issuer);
    assert.deepEqual(info.groups, [GROUP]);
    assert.deepEqual(await appsSeenWith(cookie), [ALLOWED]);

    // Then the page: the user and its groups in the top bar, the allowed app's tile and not the other's.
    await page.locator(`.tile[data-app="${ALLOWED}"]`).waitFor();
    assert.equal(await page.getByTestId('username').textContent(), info.username);
    assert.equal(await page.getByTestId('user-groups').textContent(), GROUP);
    assert.equal(await page.locator(`.tile[data-app="${OTHER}"]`).count(), 0, `no tile of ${OTHER}`);
    await page.screenshot({ path: join(artifacts, 'sso-list.png') });

    // Logging out goes through the server's /auth/logout and ends at the login page, the session gone.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/login/);
    await page.getByRole('link', { name: 'Log in via Dex' }).waitFor();
    assert.equal(await sessionCookie(), undefined, 'the cookie is cleared');
    const gone = await (await fetch(`${env.url}/api/v1/session/userinfo`, { headers: { Cookie: cookie } })).json();
    assert.equal(gone.loggedIn, false, 'the logged-out token is no longer accepted');
  });
});
