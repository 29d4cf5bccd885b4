// The dashboard in a real browser (Debian's chromium, driven by playwright-core): the page loads
// offline from the daemon, asks for the token, shows deployed functions, invokes one and takes
// a snapshot with its buttons, and the sandboxes, snapshots and invocations (with a waterfall of
// the timing breakdown) update on their own.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { buildServer } from '../api/server.js';
import { readManifestFile } from '../cli/context.js';
import { manifestPath, newPlatform } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (scripts/setup.sh installs Debian's chromium)`;

test('the dashboard works in a real browser: token, functions, invoke and snapshot buttons, live sandboxes, snapshots and waterfalls', { skip, timeout: 120_000 }, async () => {
  const platform = newPlatform();
  const token = 'dashboard-test-token';
  const server = await buildServer(platform, { host: '127.0.0.1', token, logLevel: 'silent' });
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
    assert.deepEqual(failed, []);
  } finally {
    await browser?.close();
    await server.close();
    await platform.close();
  }
});
