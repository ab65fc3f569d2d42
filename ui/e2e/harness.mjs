// @ts-check
// What the browser tests share: the settings from the environment, Debian's Chromium through playwright-core,
// the API as a script sees it, the demo git repository, polling with deadlines, and a Dex for SSO.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const artifacts = join(here, 'artifacts');
export const docsScreenshot = join(here, '..', '..', 'docs', 'ui-app.png');

export const env = {
  url: (process.env.BERTH_URL ?? 'http://localhost:8080').replace(/\/$/, ''),
  user: process.env.BERTH_USER ?? 'admin',
  app: process.env.BERTH_APP ?? 'web',
  /** berth's control namespace (kubectl reads the admin password and makes the read-only account there). */
  namespace: process.env.BERTH_NAMESPACE ?? 'argocd',
  chromium: process.env.CHROMIUM ?? '/usr/bin/chromium',
  demoRepo: process.env.BERTH_DEMO_REPO ?? defaultDemoRepo(),
};

function defaultDemoRepo() {
  const repo = join(process.env.BERTH_CACHE ?? join(homedir(), '.cache', 'berth'), 'demo', 'k8s-manifests');
  return existsSync(join(repo, '.git')) ? repo : undefined;
}

/** kubectl's answer, or undefined when there is no kubectl or no cluster. */
export function kubectl(/** @type {string[]} */ ...args) {
  return kubectlWithInput(undefined, ...args);
}

/** kubectl reading `input` on stdin (`-f -`). @param {string | undefined} input @param {string[]} args */
export function kubectlWithInput(input, ...args) {
  try {
    return execFileSync('kubectl', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'ignore'], timeout: 20_000 });
  } catch {
    return undefined;
  }
}

let cachedPassword = process.env.BERTH_PASSWORD;

/** BERTH_PASSWORD, or else the admin's initial password from the cluster (as hack/demo prints it). */
export function password() {
  if (cachedPassword) return cachedPassword;
  const b64 = kubectl('-n', env.namespace, 'get', 'secret', 'argocd-initial-admin-secret', '-o', 'jsonpath={.data.password}');
  if (!b64) throw new Error('set BERTH_PASSWORD (no kubectl access to argocd-initial-admin-secret either)');
  cachedPassword = Buffer.from(b64, 'base64').toString('utf8');
  return cachedPassword;
}

export async function launch() {
  if (!existsSync(env.chromium)) {
    throw new Error(`no Chromium at ${env.chromium}: apt-get install -y chromium (or set CHROMIUM)`);
  }
  mkdirSync(artifacts, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'berth-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env.chromium,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Logs in through the page, as a person would. */
export async function login(/** @type {import('playwright-core').Page} */ page, user = env.user, pass = password()) {
  await page.goto(`${env.url}/login`);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(pass);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/\/applications/);
}

/** The REST API with a token of its own, for set-up and clean-up. */
export class Api {
  /** @param {string} token */
  constructor(token) {
    this.token = token;
  }

  static async login(user = env.user, pass = password()) {
    const res = await fetch(`${env.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: user, password: pass }),
    });
    if (!res.ok) throw new Error(`login as ${user}: ${res.status} ${await res.text()}`);
    const body = /** @type {{token: string}} */ (await res.json());
    return new Api(body.token);
  }

  /** @param {string} method @param {string} path @param {unknown} [body] */
  async call(method, path, body) {
    const res = await fetch(`${env.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return /** @type {any} */ (text ? JSON.parse(text) : {});
  }

  /** @param {string} name */
  app(name) {
    return this.call('GET', `/api/v1/applications/${name}`);
  }

  /** A merge patch, sent again on 409 (the controller wrote status meanwhile). @param {string} name @param {unknown} patch */
  mergePatch(name, patch) {
    const body = { name, patch: JSON.stringify(patch), patchType: 'merge' };
    return eventually(`PATCH ${name}`, () => this.call('PATCH', `/api/v1/applications/${name}`, body), 10_000);
  }
}

/** The demo repository of hack/demo: its web Deployment's image tag, bumped and committed. */
export class DemoRepo {
  /** @param {string} dir */
  constructor(dir) {
    this.dir = dir;
    this.file = join(dir, 'apps', 'web', 'deployment.yaml');
  }

  /** @param {string[]} args */
  git(...args) {
    return execFileSync('git', ['-C', this.dir, ...args], { encoding: 'utf8' }).trim();
  }

  head() {
    return this.git('rev-parse', 'HEAD');
  }

  image() {
    const m = /image:\s*(\S+)/.exec(readFileSync(this.file, 'utf8'));
    if (!m?.[1]) throw new Error(`no image in ${this.file}`);
    return m[1];
  }

  /** Sets the next patch version (v1.2.3 → v1.2.4) and commits; answers the new image. */
  bumpImage() {
    const old = this.image();
    const m = /^(.*:v?\d+\.\d+\.)(\d+)$/.exec(old);
    const next = m ? `${m[1] ?? ''}${Number(m[2]) + 1}` : `${old.split(':')[0] ?? old}:v1.0.${String(Date.now() % 100000)}`;
    writeFileSync(this.file, readFileSync(this.file, 'utf8').replace(old, next));
    this.git('-c', 'user.name=berth-e2e', '-c', 'user.email=e2e@berth.local', 'commit', '-qam', `web ${next.split(':')[1] ?? next} (ui e2e)`);
    return next;
  }
}

/**
 * Polls `check` until it answers something truthy, or fails with the last answer after `timeout` ms.
 * @template T
 * @param {string} what
 * @param {() => Promise<T> | T} check
 * @param {number} [timeout]
 * @returns {Promise<NonNullable<T>>}
 */
export async function eventually(what, check, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
    try {
      last = await check();
      if (last) return /** @type {NonNullable<T>} */ (last);
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * The password of `DEX_USER_HASH`: Dex reads only bcrypt hashes, and this one is Dex's own example's
 * (config.dev.yaml), so no bcrypt is needed here.
 */
export const DEX_PASSWORD = 'password';
const DEX_USER_HASH = '$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W';

/** Dex's binary: DEX, else `dex` on PATH, else hack/deps' directory (hack/deps builds it). */
function dexBinary() {
  if (process.env.DEX) return process.env.DEX;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'dex'))) return join(dir, 'dex');
  }
  const bindir = execFileSync(join(here, '..', '..', 'hack', 'deps'), ['bindir'], { encoding: 'utf8' }).trim();
  const dex = join(bindir, 'dex');
  if (!existsSync(dex)) throw new Error(`no dex at ${dex}: run hack/deps (or set DEX)`);
  return dex;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released for the caller to listen on). */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * A real Dex of its own, the OIDC provider of the SSO scenarios: memory storage, no approval screen, its
 * password database with one user (password `DEX_PASSWORD`, in `groups`), and one confidential client that
 * may come back only to `redirectURI`. Its login page is the password form, as Dex shows it with no other
 * connector. Answers the issuer (`http://127.0.0.1:<port>/dex`) once Dex serves its discovery document.
 * @param {{clientID: string, clientSecret: string, redirectURI: string,
 *          user: {email: string, username: string, groups: string[]}}} options
 */
export async function startDex({ clientID, clientSecret, redirectURI, user }) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}/dex`;
  const dir = mkdtempSync(join(tmpdir(), 'berth-e2e-dex-'));
  const config = {
    issuer,
    storage: { type: 'memory' },
    web: { http: `127.0.0.1:${port}` },
    oauth2: { skipApprovalScreen: true },
    enablePasswordDB: true,
    staticPasswords: [{ ...user, hash: DEX_USER_HASH, userID: `e2e-${user.username}` }],
    staticClients: [{ id: clientID, secret: clientSecret, name: 'berth', redirectURIs: [redirectURI] }],
  };
  // JSON is YAML: Dex reads it as its config file.
  writeFileSync(join(dir, 'config.yaml'), JSON.stringify(config), { mode: 0o600 });
  const log = openSync(join(dir, 'dex.log'), 'a');
  const child = spawn(dexBinary(), ['serve', join(dir, 'config.yaml')], { stdio: ['ignore', log, log] });
  closeSync(log);
  /** @type {number | null} */
  let exited = null;
  const gone = new Promise((resolve) => child.once('exit', (code) => resolve((exited = code ?? -1))));
  const logTail = () => readFileSync(join(dir, 'dex.log'), 'utf8').split('\n').slice(-20).join('\n');
  const stop = async () => {
    if (exited === null) {
      child.kill();
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually('Dex to serve its discovery document', async () => {
      if (exited !== null) throw new Error(`dex stopped (${String(exited)}):\n${logTail()}`);
      const res = await fetch(`${issuer}/.well-known/openid-configuration`);
      return res.ok;
    }, 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { issuer, stop };
}
