/**
 * Rate limit spent before authentication (issue 14, item 2), against the real receiver and Redis:
 * while anonymous callers (no secret, a wrong one, forged GitHub signatures) hammer an
 * integration as fast as they can, a real sender well under the integration's rateLimit gets 202
 * for every webhook: failed authentications spend a bucket of their own (401, then 429 with the
 * connection closed) and the warn line about them is sampled.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSignet, tempKeyDir, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'auth-limit-secret-0123456789';
const REAL = 20;
const fixture = (name: string): string => readFileSync(new URL(`../fixtures/webhooks/${name}`, import.meta.url), 'utf8');
const yaml = `
registries: [{ host: registry.example.com }, { host: ghcr.io }]
integrations:
  - { name: tok, kind: distribution, secret: "${SECRET}", rateLimit: { requestsPerSecond: 20, burst: 40 } }
  - { name: gh, kind: github, secret: "${SECRET}", rateLimit: { requestsPerSecond: 20, burst: 40 } }
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "registry.example.com/**", keys: [k] }, { match: "ghcr.io/**", keys: [k] }]
`;

let signet: RunningSignet;
let tmp: KeyDir;
beforeAll(async () => {
  tmp = tempKeyDir();
  signet = await startSignet(yaml, { baseDir: tmp.dir, roles: { receiver: true, worker: false } });
});
afterAll(async () => {
  await signet?.stop();
  tmp?.remove();
});

const sign = (b: string): string => `sha256=${createHmac('sha256', SECRET).update(b).digest('hex')}`;
const dist = fixture('distribution-push.json');
const gh = fixture('github-package-published.json');

/** A real webhook (numbered so each is a new push) and an anonymous one, per integration. */
const calls: Record<'tok' | 'gh', { real(i: number): RequestInit; anonymous(i: number): RequestInit }> = {
  tok: {
    real: (i) => ({
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
      body: dist.replace('v1.2.3', `real-${i}`),
    }),
    anonymous: (i) => ({
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(i % 2 ? { authorization: 'Bearer not-the-secret-0123456789' } : {}) },
      body: dist,
    }),
  },
  gh: {
    real: (i) => {
      const b = gh.replaceAll('v1.2.3', `real-${i}`);
      return { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'package', 'x-hub-signature-256': sign(b) }, body: b };
    },
    anonymous: (i) => ({
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'package', ...(i % 2 ? { 'x-hub-signature-256': `sha256=${'ab'.repeat(32)}` } : {}) },
      body: gh,
    }),
  },
};

async function rejected(integration: string): Promise<Record<string, number>> {
  const m = await signet.metrics.webhookRejected.get();
  return Object.fromEntries(m.values.filter((v) => v.labels.integration === integration).map((v) => [String(v.labels.reason), v.value]));
}

describe.each(['tok', 'gh'] as const)('an anonymous flood on %s', (name) => {
  it('does not spend the real sender’s rate limit: every real webhook gets 202; failures get 401 then 429; the warn line is sampled', async () => {
    const started = Date.now();
    const flood: (number | 'closed')[] = [];
    const real: number[] = [];
    let done = false;
    // the flood lasts as long as the real sender takes to send its REAL webhooks, 100 ms apart
    const workers = Array.from({ length: 32 }, async (_, w) => {
      for (let i = w; !done; i += 32) {
        try {
          const res = await fetch(`${signet.url}/hooks/${name}`, calls[name].anonymous(i));
          await res.arrayBuffer();
          flood.push(res.status);
        } catch {
          flood.push('closed');
        }
      }
    });
    const sender = (async () => {
      for (let i = 0; i < REAL; i++) {
        const res = await fetch(`${signet.url}/hooks/${name}`, calls[name].real(i));
        await res.arrayBuffer();
        real.push(res.status);
        await new Promise((r) => setTimeout(r, 100));
      }
      done = true;
    })();
    await Promise.all([...workers, sender]);
    const elapsed = Date.now() - started;

    expect(real).toHaveLength(REAL);
    expect(real.filter((s) => s !== 202)).toEqual([]);
    expect(flood.length).toBeGreaterThan(200);
    expect(flood.filter((s) => s !== 401 && s !== 429 && s !== 'closed')).toEqual([]);
    expect(flood.filter((s) => s === 429).length).toBeGreaterThan(0);
    const counts = await rejected(name);
    expect((counts['unauthorized'] ?? 0) + (counts['throttled_auth'] ?? 0)).toBe(flood.length);
    const lines = signet.logs.filter((l) => l.integration === name && String(l.msg).startsWith('webhook rejected'));
    expect(lines.length).toBeLessThanOrEqual(Math.ceil(elapsed / 10_000));
    console.info(
      `${name}: ${flood.length} anonymous calls in ${elapsed} ms (${flood.filter((s) => s === 401).length} x 401, ${flood.filter((s) => s === 429).length} x 429, ${flood.filter((s) => s === 'closed').length} closed), ${real.length} real webhooks all 202, ${lines.length} warn line(s)`,
    );
  });
});
