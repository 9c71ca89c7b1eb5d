/**
 * The status page as an operator reads it (issue 19 item 9), in a real headless Chromium, in a
 * split deployment like the Helm chart's: a receiver-only and a worker-only signet sharing one
 * Redis. Webhooks (distribution notifications) bring a push that is signed for real (legacy and
 * bundle), one the registry refuses, one a rule's tag filter skips and a flood of pushes no rule
 * covers. The page shows one row per push (no blank "push" row), with state, rule, keys and
 * formats; a failed push names its rule and the keys it was to be signed with; "Signatures by
 * key" comes from Redis (the receiver signs nothing itself); search (text and one image's
 * lookup), the state filter and the pages work; at 800 px nothing overflows sideways.
 * Screenshots: test-artifacts/status-page-1400.png and test-artifacts/status-page-800.png.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/images.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, tempKeyDir, uniquePrefix, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const TOKEN = 'ui-views-token-0123456789abcdef';
const SECRET = 'ui-views-hook-secret-0123456789';
const ARTIFACTS = path.resolve(import.meta.dirname, '../../test-artifacts');
const FLOOD = 60;

let registry: RunningRegistry;
let proxy: FaultProxy;
let receiver: RunningSignet;
let worker: RunningSignet;
let tmp: KeyDir;
let browser: BrowserContext;
let page: Page;
let signedDigest: string;

const yaml = () => `
server: { statusPageToken: "${TOKEN}" }
worker: { concurrency: 2, attempts: 1, backoffMs: 100 }
registries: [{ host: "${proxy.host}", insecure: true }]
integrations: [{ name: dist, kind: distribution, secret: "${SECRET}" }]
keys: [{ name: k, provider: file, path: k.pem }]
rules:
  - { match: "${proxy.host}/team/**", keys: [k] }
  - { match: "${proxy.host}/tagged/**", keys: [k], tags: { include: ["v*"] } }
`;

/** One distribution notification carrying these pushes. */
async function hook(pushes: { repository: string; tag: string; digest: string }[]) {
  const events = pushes.map((p, i) => ({
    id: `ev-${i}-${p.repository}-${p.tag}`,
    action: 'push',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: p.digest, size: 1, repository: p.repository, tag: p.tag },
    request: { host: proxy.host, method: 'PUT' },
  }));
  const res = await fetch(`${receiver.url}/hooks/dist`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBeLessThan(300);
  return (await res.json()) as { requestId: string };
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  tmp = tempKeyDir();
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  const prefix = uniquePrefix();
  receiver = await startSignet(yaml(), { baseDir: tmp.dir, prefix, roles: { receiver: true, worker: false } });
  worker = await startSignet(yaml(), { baseDir: tmp.dir, prefix, roles: { receiver: false, worker: true } });

  const signed = await pushImage(registry, 'team/app', 'v1');
  signedDigest = signed.digest;
  const denied = await pushImage(registry, 'team/denied', 'v1');
  proxy.faults.push({ times: Infinity, status: 403, match: (r) => (r.url ?? '').includes('/team/denied/') });
  await hook([
    { repository: 'team/app', tag: 'v1', digest: signed.digest },
    { repository: 'team/denied', tag: 'v1', digest: denied.digest },
    { repository: 'tagged/app', tag: 'nightly', digest: signed.digest },
  ]);
  // a flood no rule covers: one skipped(reason) record per push
  await hook(Array.from({ length: FLOOD }, (_, i) => ({ repository: 'flood/app', tag: `b${i}`, digest: `sha256:${i.toString(16).padStart(64, '0')}` })));
  const status = receiver.runtime.status;
  await waitFor(
    'signed and failed recorded',
    async () => {
      const [s, f] = await Promise.all([status.get(`${proxy.host}/team/app`, signed.digest, 'v1'), status.get(`${proxy.host}/team/denied`, undefined, 'v1')]);
      return s.some((e) => e.state === 'signed' && !e.key) && f.some((e) => e.state === 'failed');
    },
    30_000,
    100,
  );

  const profile = path.join(tmp.dir, 'chromium-profile');
  browser = await launchChromium(profile, { width: 1400, height: 1000 });
  page = browser.pages()[0] ?? (await browser.newPage());
}, 90_000);
afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await receiver?.stop();
  await proxy?.close();
  await registry?.stop();
  tmp?.remove();
});

const ui = (query = '') => `${receiver.url}/ui?token=${TOKEN}${query}`;
const rowOf = (image: string) => page.locator(`#recent tr[data-image^="${image}"]`);
// (the page's own globals, in the browser: this file is typed without the DOM lib)
const noSideScroll = () =>
  page.evaluate(() => {
    const w = globalThis as unknown as { innerWidth: number; document: { documentElement: { scrollWidth: number } } };
    return w.document.documentElement.scrollWidth <= w.innerWidth;
  });

describe('status page views', () => {
  it('one row per push with state, rule, keys and formats; failures name their rule and keys; signatures counted in Redis', async () => {
    expect((await page.goto(ui()))!.status()).toBe(200);
    const image = `${proxy.host}/team/app:v1@${signedDigest}`;
    // one row for the signed push: its push-level entry and its key entry together
    expect(await page.locator(`#recent tr[data-repository="${proxy.host}/team/app"]`).count()).toBe(1);
    const signed = rowOf(image);
    expect(await signed.getAttribute('data-state')).toBe('signed');
    expect(await signed.locator('.rule').textContent()).toBe('0');
    expect(await signed.locator('li[data-key="k"]').textContent()).toBe('k: signed (legacy, bundle)');
    expect(await signed.locator('.formats').textContent()).toBe('legacy, bundle');
    // no row without a state or an image (the old blank "push" rows)
    for (const r of await page.locator('#recent tbody tr').all()) expect(await r.locator('.image').textContent()).not.toBe('');

    const failed = page.locator(`#recent tr[data-repository="${proxy.host}/team/denied"]`);
    expect(await failed.getAttribute('data-state')).toBe('failed');
    expect(await failed.locator('.rule').textContent()).toBe('0');
    expect(await failed.locator('li[data-key="k"]').textContent()).toBe('k: not signed');
    expect(await failed.locator('.detail').textContent()).toMatch(/^REGISTRY_DENIED: /);
    const job = page.locator('#failures tbody tr').first();
    expect(await job.locator('.rule').textContent()).toBe('0');
    expect(await job.locator('.keys-cell').textContent()).toBe('k');

    // (the flood after it pushed it to page 2; a search finds it)
    await page.goto(ui('&q=tagged%2Fapp'));
    const skipped = page.locator(`#recent tr[data-repository="${proxy.host}/tagged/app"]`);
    expect(await skipped.getAttribute('data-state')).toBe('skipped');
    expect(await skipped.locator('.detail').textContent()).toMatch(/tags\.include/);

    // the receiver process signed nothing: the counts come from Redis (one per format)
    expect(await page.textContent('#signatures tr[data-key="k"] [data-outcome="signed"]')).toBe('2');
    expect(await page.textContent('#signatures tr[data-key="k"] [data-outcome="formats"]')).toMatch(/legacy 1/);
    const own = (await receiver.metrics.signatures.get()).values.reduce((n, v) => n + v.value, 0);
    expect(own).toBe(0);

    await page.goto(ui());
    const shot = path.join(ARTIFACTS, 'status-page-1400.png');
    await page.screenshot({ path: shot, fullPage: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-1400-top.png') });
    expect(statSync(shot).size).toBeGreaterThan(20_000);
  });

  it('search finds an image (text, or one image looked up in Redis); the state filter and the pages work', async () => {
    await page.goto(ui());
    await page.fill('#q', `${proxy.host}/team/app:v1`);
    await Promise.all([page.waitForURL(/q=/), page.click('#apply')]);
    expect(await page.locator('#lookup h2').textContent()).toBe(`Image ${proxy.host}/team/app:v1`);
    expect(await page.locator('#lookup tr[data-state="signed"] li[data-key="k"]').textContent()).toBe('k: signed (legacy, bundle)');
    expect(await page.locator('#lookup .meta').textContent()).toBe('rule 0: keys k');
    expect(await page.locator('#recent tbody tr').count()).toBe(1);

    await page.fill('#q', 'team/den');
    await Promise.all([page.waitForURL(/q=team%2Fden/), page.click('#apply')]);
    expect(await page.locator('#lookup').count()).toBe(0);
    expect(await page.locator('#recent tbody tr').count()).toBe(1);
    expect(await page.locator('#recent tbody tr').getAttribute('data-repository')).toBe(`${proxy.host}/team/denied`);

    await page.fill('#q', '');
    await page.selectOption('#state', 'failed');
    await Promise.all([page.waitForURL(/state=failed/), page.click('#apply')]);
    const states = await page.locator('#recent tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-state')));
    expect(states.length).toBeGreaterThan(0);
    expect(new Set(states)).toEqual(new Set(['failed']));

    await page.selectOption('#state', 'skipped');
    await Promise.all([page.waitForURL(/state=skipped/), page.click('#apply')]);
    // 60 flood pushes and the tag-filtered one: 50 a page
    expect(await page.textContent('#page-info')).toBe(`page 1 of 2 · ${FLOOD + 1} image(s)`);
    const first = await page.locator('#recent tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-image')));
    expect(first).toHaveLength(50);
    await Promise.all([page.waitForURL(/page=2/), page.click('#page-next')]);
    expect(await page.textContent('#page-info')).toBe(`page 2 of 2 · ${FLOOD + 1} image(s)`);
    const second = await page.locator('#recent tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-image')));
    expect(second).toHaveLength(FLOOD + 1 - 50);
    expect(second.filter((i) => first.includes(i))).toEqual([]);
    expect(await page.locator('#page-next').count()).toBe(0);
    // the filter is kept across pages, and the refresh link keeps all of it
    expect(await page.locator('#state').inputValue()).toBe('skipped');
    expect(await page.getAttribute('#refresh', 'href')).toMatch(/state=skipped.*page=2|page=2.*state=skipped/);
    await Promise.all([page.waitForURL(/page=1|^(?!.*page=)/), page.click('#page-prev')]);
    expect(await page.textContent('#page-info')).toMatch(/^page 1 of 2/);

    // auto-refresh: a meta refresh, off unless chosen
    await page.goto(ui('&refresh=30'));
    expect(await page.locator('meta[http-equiv="refresh"]').getAttribute('content')).toBe('30');
  });

  it('at 800 px nothing overflows sideways (the tables become cards)', async () => {
    await page.setViewportSize({ width: 800, height: 1000 });
    for (const q of ['', '&state=failed', `&q=${encodeURIComponent(`${proxy.host}/team/app:v1`)}`, '&state=skipped&page=2']) {
      await page.goto(ui(q));
      expect(await noSideScroll(), q || 'default view').toBe(true);
    }
    await page.goto(ui());
    const shot = path.join(ARTIFACTS, 'status-page-800.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(20_000);
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-800-top.png') });
    // the cards still carry each field's name
    const label = await page
      .locator(`#recent tr[data-repository="${proxy.host}/team/app"] td.formats`)
      .evaluate((td) => (globalThis as unknown as { getComputedStyle(e: unknown, p: string): { content: string } }).getComputedStyle(td, '::before').content);
    expect(label).toBe('"formats"');
    await page.setViewportSize({ width: 1400, height: 1000 });
  });
});
