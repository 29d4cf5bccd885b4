// The dashboard in a real browser (Debian's chromium, driven by playwright-core): the page loads
// offline from the daemon, asks for the token, shows deployed functions, invokes one and takes
// a snapshot with its buttons, and the sandboxes, snapshots and invocations (with a waterfall of
// the timing breakdown) update on their own; experiment reports in the results directory are
// listed and open in a sandboxed frame, and nothing outside that directory is served.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { buildServer } from '../api/server.js';
import { readManifestFile } from '../cli/context.js';
import { manifestPath, newPlatform, tempDataDir } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (scripts/setup.sh installs Debian's chromium)`;

test('the dashboard works in a real browser: token, functions, invoke and snapshot buttons, live sandboxes, snapshots, waterfalls and experiment reports', { skip, timeout: 120_000 }, async () => {
  const platform = newPlatform();
  const token = 'dashboard-test-token';
  // A results directory as the harness leaves it (a bench run and a replay run), a file beside it
  // that must never be served, and a link inside pointing out.
  const results = join(tempDataDir(), 'results');
  const report = (dir: string, title: string): void => {
    mkdirSync(join(results, dir), { recursive: true });
    writeFileSync(join(results, dir, 'report.html'), `<!doctype html><html><body><h1>${title}</h1></body></html>`);
  };
  report('bench/smoke-2026-12-02T20-00-00-000Z', 'thaw bench: smoke');
  report('replay/replay-ci-2026-12-02T20-10-00-000Z', 'thaw replay: replay-ci');
  writeFileSync(join(results, '..', 'secret.html'), 'not for the dashboard');
  mkdirSync(join(results, 'bench', 'linked'));
  symlinkSync(join(results, '..', 'secret.html'), join(results, 'bench', 'linked', 'report.html'));
  const server = await buildServer(platform, { host: '127.0.0.1', token, logLevel: 'silent' }, { resultsDir: results });
  let browser: Browser | undefined;
  try {
    const { manifest, artefact } = readManifestFile(manifestPath('hello-c'));
    await platform.deployFunction(manifest, artefact);
    await server.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
    // Static files need no token; the API does.
    assert.equal((await fetch(`${base}/ui/`)).status, 200);
    assert.equal((await fetch(`${base}/ui/vendor/preact.module.js`)).headers.get('content-type')?.startsWith('application/javascript'), true);
    assert.equal((await fetch(`${base}/ui/vendor/package.json`)).status, 404, 'only the three vendored modules');
    assert.equal((await fetch(`${base}/v1/functions`)).status, 401);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    const failed: string[] = [];
    page.on('requestfailed', (r) => failed.push(r.url()));
    page.on('pageerror', (e) => failed.push(e.message));
    await page.goto(`${base}/ui/`);
    await page.fill('input[name=token]', token);
    await page.click('button[type=submit]');
    const row = page.locator('tr[data-function="hello-c"]');
    await row.waitFor({ timeout: 20_000 });

    await row.locator('input[name=input]').fill('browser');
    await row.locator('button[name=invoke]').click();
    await page.locator('#message.ok').waitFor({ timeout: 30_000 });
    assert.match(await page.locator('#message').innerText(), /hello, browser/);
    await page.locator('#sandboxes tr[data-sandbox]').first().waitFor({ timeout: 10_000 });
    const sandbox = await page.locator('#sandboxes tr[data-sandbox] td').first().innerText();
    assert.ok((await platform.listSandboxes()).some((s) => s.id === sandbox), 'the sandbox the page shows is live');
    const bars = page.locator('#invocations tr[data-invocation] .waterfall span');
    await bars.first().waitFor({ timeout: 10_000 });
    assert.ok(await page.locator('#invocations .waterfall span[data-part=handlerMs]').count() >= 1);

    await row.locator('button[name=snapshot]').click();
    await page.locator('#snapshots tr[data-snapshot]').first().waitFor({ timeout: 30_000 });
    const snaps = await platform.listSnapshots('hello-c');
    assert.equal(snaps.length, 1);
    assert.equal(await page.locator(`#snapshots tr[data-snapshot="${snaps[0]!.id}"]`).count(), 1);

    // An invocation made elsewhere shows up without a reload.
    await platform.invoke({ function: 'hello-c', mode: 'warm', input: Buffer.from('x') });
    await fetch(`${base}/v1/functions/hello-c/invocations?mode=warm`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: 'y' });
    await page.locator('#invocations tr[data-invocation]').nth(1).waitFor({ timeout: 10_000 });

    // Experiment reports: both runs listed (the link to outside is not), one opens in the page.
    const links = page.locator('#reports a.report-link');
    await links.first().waitFor({ timeout: 10_000 });
    assert.equal(await links.count(), 2);
    assert.deepEqual((await links.evaluateAll((as) => as.map((a) => a.getAttribute('href')))).sort(), [
      '/v1/reports/bench/smoke-2026-12-02T20-00-00-000Z/report.html', '/v1/reports/replay/replay-ci-2026-12-02T20-10-00-000Z/report.html',
    ]);
    await page.locator('#reports tr', { hasText: 'smoke-2026' }).locator('a.report-link').click();
    assert.equal(await page.frameLocator('#reports .report-view iframe').locator('h1').innerText({ timeout: 10_000 }), 'thaw bench: smoke');
    assert.deepEqual(failed, []);

    // The same auth as the API, and only report.html files inside the results directory.
    const auth = { authorization: `Bearer ${token}` };
    assert.equal((await fetch(`${base}/v1/reports`)).status, 401);
    assert.equal((await fetch(`${base}/v1/reports/bench/smoke-2026-12-02T20-00-00-000Z/report.html`)).status, 401);
    const ok = await fetch(`${base}/v1/reports/bench/smoke-2026-12-02T20-00-00-000Z/report.html`, { headers: auth });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-security-policy') ?? '', /^sandbox;/);
    for (const bad of ['%2e%2e/secret.html', 'bench/%2e%2e/%2e%2e/secret.html', 'bench/linked/report.html', '%2Fetc%2Fpasswd', 'bench/smoke-2026-12-02T20-00-00-000Z/../../../secret.html', 'bench%2F..%2F..%2Fsecret.html']) {
      const res = await fetch(`${base}/v1/reports/${bad}`, { headers: auth });
      assert.equal(res.status, 404, bad);
      assert.doesNotMatch(await res.text(), /not for the dashboard/, bad);
    }
  } finally {
    await browser?.close();
    await server.close();
    await platform.close();
  }
});
