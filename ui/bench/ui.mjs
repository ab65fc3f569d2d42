// @ts-check
// The web UI's benchmark (hack/bench ui): against a real `berth run` (the API server alone) holding
// BENCH_UI_APPS Applications, in Debian's Chromium headless:
//   - first render of the list: from navigation to the first tiles, and to the count of every app;
//   - a status change to its appearance in an open page: the time from patching an app's health in the
//     Kubernetes API (kubectl, its own start-up included) to the page showing it, on the list and on the
//     application's page.
// Prints a Markdown table. Env: BERTH_URL, BERTH_PASSWORD, BERTH_NAMESPACE, BENCH_UI_APPS, BENCH_TRIALS.
import { execFileSync } from 'node:child_process';
import { env, launch, login } from '../e2e/harness.mjs';

const apps = Number(process.env.BENCH_UI_APPS ?? 5000);
const trials = Number(process.env.BENCH_TRIALS ?? 5);
const ns = env.namespace;
const pass = process.env.BERTH_PASSWORD ?? '';

/** The p-th percentile of `xs` (nearest rank). @param {number[]} xs @param {number} p @returns {number} */
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] ?? 0;
};
const ms = (/** @type {number} */ n) => `${Math.round(n)} ms`;

/** Sets the app's health in its status (what a controller would write), through kubectl. */
function setHealth(/** @type {string} */ name, /** @type {string} */ health) {
  const patch = JSON.stringify({ status: { health: { status: health } } });
  execFileSync('kubectl', ['-n', ns, 'patch', 'application', name, '--type', 'merge', '-p', patch], { stdio: 'ignore' });
}

const browser = await launch();
const rows = [];
try {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1440, height: 900 });
  await login(page, env.user, pass);

  const firstTiles = [];
  const allCounted = [];
  for (let i = 0; i < trials; i++) {
    await page.goto('about:blank');
    const start = Date.now();
    await page.goto(`${env.url}/applications`);
    await page.locator('.tile').first().waitFor({ timeout: 120_000 });
    firstTiles.push(Date.now() - start);
    await page.getByTestId('summary').filter({ hasText: `${apps} applications` }).waitFor({ timeout: 120_000 });
    allCounted.push(Date.now() - start);
  }
  rows.push([`list of ${apps} apps: navigation → first tiles (p50 / max of ${trials})`, `${ms(pct(firstTiles, 50))} / ${ms(Math.max(...firstTiles))}`]);
  rows.push([`list of ${apps} apps: navigation → all ${apps} counted`, `${ms(pct(allCounted, 50))} / ${ms(Math.max(...allCounted))}`]);

  // A status change reaching the open list (the first tile, on screen) and the open application page.
  const first = await page.locator('.tile').first().getAttribute('data-app');
  if (!first) throw new Error('no tile');
  const onList = [];
  for (let i = 0; i < trials; i++) {
    const health = i % 2 === 0 ? 'Degraded' : 'Healthy';
    const tile = page.locator(`.tile[data-app="${first}"]`);
    const start = Date.now();
    setHealth(first, health);
    await tile.filter({ hasText: health }).waitFor({ timeout: 60_000 });
    onList.push(Date.now() - start);
  }
  rows.push([`health changed in the API → shown on the open list (p50 / max)`, `${ms(pct(onList, 50))} / ${ms(Math.max(...onList))}`]);

  await page.goto(`${env.url}/applications/${first}`);
  const header = page.getByTestId('app-health-status').locator('.status-text');
  await header.waitFor({ timeout: 60_000 });
  const onPage = [];
  for (let i = 0; i < trials; i++) {
    const health = i % 2 === 0 ? 'Progressing' : 'Healthy';
    const start = Date.now();
    setHealth(first, health);
    await header.filter({ hasText: health }).waitFor({ timeout: 60_000 });
    onPage.push(Date.now() - start);
  }
  rows.push([`health changed in the API → shown on the open application page (p50 / max)`, `${ms(pct(onPage, 50))} / ${ms(Math.max(...onPage))}`]);
} finally {
  await browser.close();
}
console.log('\n| measure | berth |\n|---|---|');
for (const [what, value] of rows) console.log(`| ${what} | ${value} |`);
