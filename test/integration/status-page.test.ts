/**
 * The status page in a real headless Chromium (Debian's chromium, driven by playwright-core): a
 * job failed for real (a loopback proxy in front of a real registry answers 403), the page shows
 * it with its reason, the fault is cleared, the Retry button is clicked and the image ends up
 * signed. The page refuses a missing or wrong token, the retry endpoint refuses a token that is
 * not in the body or header (query string, cookie), and hostile text is shown as text.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, tempKeyDir, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const TOKEN = 'ui-test-token-0123456789abcdef';

let registry: RunningRegistry;
let proxy: FaultProxy;
let signet: RunningSignet;
let tmp: KeyDir;
let browser: BrowserContext;
let page: Page;

beforeAll(async () => {
  tmp = tempKeyDir();
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  signet = await startSignet(
    `
server: { statusPageToken: "${TOKEN}" }
worker: { concurrency: 2, attempts: 2, backoffMs: 100 }
registries: [{ host: "${proxy.host}", insecure: true }]
integrations: [{ name: local, kind: distribution, secret: "hook-secret-0123456789" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "${proxy.host}/**", keys: [k] }]
`,
    { baseDir: tmp.dir },
  );
  const profile = path.join(tmp.dir, 'chromium-profile');
  browser = await launchChromium(profile);
  page = browser.pages()[0] ?? (await browser.newPage());
});
afterAll(async () => {
  await browser?.close();
  await signet?.stop();
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

const ui = (token?: string) => `${signet.url}/ui${token === undefined ? '' : `?token=${encodeURIComponent(token)}`}`;

describe('status page', () => {
  it('is refused without the token or with a wrong one', async () => {
    expect((await page.goto(ui()))!.status()).toBe(401);
    expect(await page.textContent('h1')).toBe('401 unauthorized');
    expect((await page.goto(ui('wrong-token-0123456789abcdef')))!.status()).toBe(401);
    expect((await page.goto(ui(TOKEN.slice(0, -1))))!.status()).toBe(401);
    const bearer = await fetch(`${signet.url}/ui`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(bearer.status).toBe(200);
    expect(bearer.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
  });

  it('shows a failure a test caused; Retry makes it succeed', async () => {
    await pushImage(registry, 'team/app', 'v1');
    proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/team/app/') });
    const jobId = await signet.service.queue!.enqueue({
      event: { integration: 'local', host: proxy.host, repository: 'team/app', tag: 'v1', receivedAt: new Date().toISOString() },
      registry: proxy.host,
      requestId: 'ui-req-1',
    });
    await waitFor('job failed', async () => (await signet.service.queue!.queue.getJobState(jobId)) === 'failed');
    // one refused webhook call, so the per-integration table has something to show
    expect((await fetch(`${signet.url}/hooks/local`, { method: 'POST', body: '{}' })).status).toBe(401);

    const res = await page.goto(ui(TOKEN));
    expect(res!.status()).toBe(200);
    expect(await page.title()).toBe('signet status');
    const row = page.locator(`#failures tr[data-job="${jobId}"]`);
    expect(await row.count()).toBe(1);
    expect(await row.locator('.reason').textContent()).toMatch(/^REGISTRY_DENIED: registry .* denied GET on team\/app \(HTTP 403/);
    expect(await row.locator('td').nth(1).textContent()).toBe(`${proxy.host}/team/app:v1`);
    expect(await page.textContent('#queue [data-queue="failed"] b')).toBe('1');
    expect(await page.textContent('#integrations tr[data-integration="local"] [data-outcome="unauthorized"]')).toBe('1');
    const failedEntry = page.locator(`#recent tr[data-state="failed"][data-repository="${proxy.host}/team/app"]`);
    expect(await failedEntry.count()).toBe(1);
    expect(await failedEntry.textContent()).toContain('ui-req-1');

    // the operator fixes the registry and clicks Retry
    proxy.faults.length = 0;
    await Promise.all([page.waitForURL(/\/ui\?token=.*&retried=/), page.click(`button[aria-label="Retry job ${jobId}"]`)]);
    expect(await page.textContent('#notice')).toBe(`Job ${jobId} queued again.`);
    await waitFor(
      'signed row on the page',
      async () => {
        await page.goto(ui(TOKEN));
        return (await page.locator(`#recent tr[data-state="signed"][data-repository="${proxy.host}/team/app"]`).count()) > 0;
      },
      20_000,
      250,
    );
    expect(await page.locator(`#failures tr[data-job="${jobId}"]`).count()).toBe(0);
    expect(await page.textContent('#failures')).toContain('No failed jobs.');
    expect(await page.textContent('#queue [data-queue="failed"] b')).toBe('0');
    // one signature per format (the default: legacy .sig and bundle)
    expect(await page.textContent('#signatures tr[data-key="k"] [data-outcome="signed"]')).toBe('2');
    expect(await signet.service.queue!.queue.getJobState(jobId)).toBe('completed');
    // (SIGNET_UI_SCREENSHOT=/some/file.png keeps it for a look; by default it goes with the temp dir)
    const shot = process.env.SIGNET_UI_SCREENSHOT ?? path.join(tmp.dir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(5_000);

    // retrying it again: not a failed job any more
    const again = await fetch(`${signet.url}/ui/jobs/${jobId}/retry`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(again.status).toBe(404);
  });

  it('the retry endpoint wants the token in the body or header, never the query string or a cookie', async () => {
    const post = (init: RequestInit, query = '') => fetch(`${signet.url}/ui/jobs/1/retry${query}`, { method: 'POST', redirect: 'manual', ...init });
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    expect((await post({ headers: form, body: '' })).status).toBe(401);
    expect((await post({ headers: form, body: 'token=nope' })).status).toBe(401);
    expect((await post({ headers: form, body: '' }, `?token=${TOKEN}`)).status).toBe(401);
    expect((await post({ headers: { ...form, cookie: `token=${TOKEN}` }, body: '' })).status).toBe(401);
    const ok = await post({ headers: form, body: `token=${TOKEN}` });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toMatch(/^\/ui\?token=.*&missing=1$/);
  });

  it('shows hostile text as text', async () => {
    await signet.runtime.status.record([
      { state: 'failed', repository: `${proxy.host}/evil/app`, tag: 'v1', code: 'X', reason: '<b id="injected">x</b><script>window.pwned=1</script>"\'' },
    ]);
    await page.goto(ui(TOKEN));
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { pwned?: number }).pwned)).toBeUndefined();
    expect(await page.locator(`#recent tr[data-repository="${proxy.host}/evil/app"]`).textContent()).toContain('<b id="injected">x</b><script>');
  });
});
