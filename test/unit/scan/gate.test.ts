/**
 * src/scan/gate.ts on the real Redis (127.0.0.1:6379, a prefix of its own) with Harbor's artifact
 * API played by the stand-in: waiting records, a scan event handing back the waiting push, the
 * decision counted once per scan, the deadline (SCAN_TIMEOUT), failed scans (SCAN_FAILED), an
 * unauthenticated sender's scan not stored, a late older scan not replacing a newer one, and a
 * later scan blocking an image signed earlier.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScanConditions, ScanReport } from '../../../src/config/conditions.js';
import { registrySchema } from '../../../src/config/schema.js';
import type { SignJobData } from '../../../src/queue/sign-queue.js';
import { ScanGate, type GateOutcome } from '../../../src/scan/gate.js';
import { REDIS_URL, deletePrefix, uniquePrefix } from '../../helpers/signet.js';
import { startHarborApi, type HarborApiStandIn } from '../../helpers/standins/harbor-api.js';

const HOST = 'harbor.example.com';
const cond: ScanConditions = { maxSeverity: 'High', waitSeconds: 60 };
const dig = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const report = (counts: Record<string, number>, extra: Partial<ScanReport> = {}): ScanReport => ({
  status: 'Success',
  severity: '',
  counts,
  scanner: { name: 'Trivy', version: 'v1' },
  ...extra,
});

let redis: Redis;
let api: HarborApiStandIn;
let prefix: string;
const now = Date.parse('2026-12-06T02:00:00Z');
const counted: GateOutcome[] = [];
let gate: ScanGate;

const push = (repo: string, digest: string, receivedAt = new Date(now).toISOString()): SignJobData => ({
  event: { integration: 'harbor', host: HOST, repository: repo, tag: 'v1', digest, pusher: 'robot$p+ci', receivedAt },
  registry: HOST,
  requestId: 'req-1',
});
const input = (repo: string, digest: string, c: ScanConditions = cond, p = push(repo, digest)) => ({
  cond: c,
  ruleIndex: 0,
  host: HOST,
  repository: repo,
  digest,
  push: p,
});

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  prefix = uniquePrefix();
  api = await startHarborApi({ username: 'u', password: 'p' });
  const cfg = registrySchema.parse({ host: HOST, credentials: { username: 'u', password: 'p' }, harborApi: api.url });
  gate = new ScanGate({ redis, prefix, ttlSeconds: 3600, registries: [cfg], onDecision: (o) => counted.push(o), now: () => now });
});

afterAll(async () => {
  await gate?.close();
  redis?.disconnect();
  await api?.close();
  await deletePrefix(prefix);
});

describe('ScanGate', () => {
  it('no scan yet: the push waits until receivedAt + waitSeconds, recorded under one per-digest key', async () => {
    const d = dig(1);
    const r = await gate.check(input('p/app', d));
    expect(r).toEqual({
      outcome: 'waiting',
      until: now + 60_000,
      reason: `waiting for the registry's scan (require.scan) until ${new Date(now + 60_000).toISOString()}`,
    });
    const key = `${prefix}:scanwait:{${HOST}/p/app@${d}}`;
    expect(gate.key(HOST, 'p/app', d)).toBe(key);
    const rec = await redis.hgetall(key);
    expect(JSON.parse(rec['push:v1']!)).toEqual(push('p/app', d));
    expect(rec['waiting']).toBe(String(now + 60_000));
    expect(await redis.ttl(key)).toBeGreaterThan(3000);
  });

  it('a long wait wakes every pollMs to ask the API again; the scan found there decides', async () => {
    const polling = new ScanGate({
      redis,
      prefix,
      ttlSeconds: 3600,
      registries: [registrySchema.parse({ host: HOST, credentials: { username: 'u', password: 'p' }, harborApi: api.url })],
      pollMs: 5000,
      now: () => now,
    });
    try {
      const d = dig(12);
      expect(await polling.check(input('p/app', d))).toMatchObject({ outcome: 'waiting', until: now + 5000 });
      // an index: Harbor's scan events named its children; its API answers the merged overview
      api.scans.set(`p/app@${d}`, { counts: { Medium: 1 } });
      expect(await polling.check(input('p/app', d))).toMatchObject({ outcome: 'passed', scan: { counts: { Medium: 1 } } });
    } finally {
      await polling.close();
    }
  });

  it('a scan event hands the waiting push back and ends the wait; the next check passes; the same decision is counted once', async () => {
    const d = dig(2);
    await gate.check(input('p/app', d));
    const back = await gate.onScan(
      HOST,
      'p/app',
      d,
      report({ High: 1, Low: 2 }, { severity: 'High', reportId: 'r2', completedAt: '2026-12-06T02:00:30Z' }),
      true,
    );
    expect(back).toEqual([push('p/app', d)]);
    expect(await redis.hget(gate.key(HOST, 'p/app', d), 'waiting')).toBeNull();
    const before = counted.length;
    const r = await gate.check(input('p/app', d));
    expect(r).toEqual({
      outcome: 'passed',
      summary: {
        scanner: 'Trivy',
        scannerVersion: 'v1',
        completedAt: '2026-12-06T02:00:30Z',
        maxSeverity: 'High',
        severity: 'High',
        counts: { High: 1, Low: 2 },
      },
      scan: { severity: 'High', counts: { High: 1, Low: 2 }, scanner: 'Trivy' },
    });
    expect(await gate.check(input('p/app', d))).toMatchObject({ outcome: 'passed' });
    expect(counted.slice(before)).toEqual(['passed']);
  });

  it('the same digest pushed under two tags: both pushes come back with the scan', async () => {
    const d = dig(11);
    const latest = push('p/app', d);
    latest.event.tag = 'latest';
    await gate.check(input('p/app', d));
    await gate.check(input('p/app', d, cond, latest));
    expect(await gate.onScan(HOST, 'p/app', d, report({}), true)).toEqual([latest, push('p/app', d)]);
  });

  it('a scan event with no push remembered returns nothing, and its scan decides the push when it comes', async () => {
    const d = dig(3);
    expect(await gate.onScan(HOST, 'p/app', d, report({ Critical: 1 }), true)).toEqual([]);
    expect(await gate.check(input('p/app', d))).toMatchObject({
      outcome: 'blocked',
      reason: 'scan found Critical:1: Critical is above require.scan.maxSeverity High',
      scan: { severity: 'Critical' },
    });
  });

  it("an unauthenticated sender's scan is not stored: the push comes back, the API decides", async () => {
    const d = dig(4);
    await gate.check(input('p/app', d));
    expect(await gate.onScan(HOST, 'p/app', d, report({}), false)).toEqual([push('p/app', d)]);
    expect(await redis.hget(gate.key(HOST, 'p/app', d), 'scan')).toBeNull();
    api.scans.set(`p/app@${d}`, { counts: { Critical: 2 } });
    expect(await gate.check(input('p/app', d))).toMatchObject({ outcome: 'blocked', scan: { counts: { Critical: 2 } } });
    // the API's final scan is kept: the next check does not ask again
    const calls = api.requests.length;
    expect(await gate.check(input('p/app', d))).toMatchObject({ outcome: 'blocked' });
    expect(api.requests.length).toBe(calls);
  });

  it('past the deadline without a scan: SCAN_TIMEOUT, counted once', async () => {
    const d = dig(5);
    const p = push('p/app', d, new Date(now - 61_000).toISOString());
    const before = counted.length;
    await expect(gate.check(input('p/app', d, cond, p))).rejects.toMatchObject({ code: 'SCAN_TIMEOUT', retryable: false });
    await expect(gate.check(input('p/app', d, cond, p))).rejects.toMatchObject({ code: 'SCAN_TIMEOUT' });
    expect(counted.slice(before)).toEqual(['timeout']);
  });

  it('a failed or stopped scan: SCAN_FAILED', async () => {
    const d = dig(6);
    await gate.onScan(HOST, 'p/app', d, { status: 'Error', severity: '', counts: {} }, true);
    await expect(gate.check(input('p/app', d))).rejects.toMatchObject({ code: 'SCAN_FAILED', message: 'the scan failed (scan_status Error)' });
    const d2 = dig(7);
    api.scans.set(`p/app@${d2}`, { status: 'Stopped' });
    await expect(gate.check(input('p/app', d2))).rejects.toMatchObject({ code: 'SCAN_FAILED', message: 'the scan was stopped before it finished' });
  });

  it('an unfinished scan from the API is no decision: the push waits', async () => {
    const d = dig(8);
    api.scans.set(`p/app@${d}`, { status: 'Running' });
    expect(await gate.check(input('p/app', d))).toMatchObject({ outcome: 'waiting' });
  });

  it('a late delivery of an older scan does not replace a newer one', async () => {
    const d = dig(9);
    await gate.onScan(HOST, 'p/app', d, report({ Low: 1 }, { completedAt: '2026-12-06T02:10:00Z', reportId: 'new' }), true);
    await gate.onScan(HOST, 'p/app', d, report({ Critical: 9 }, { completedAt: '2026-12-06T01:00:00Z', reportId: 'old' }), true);
    expect(await gate.check(input('p/app', d))).toMatchObject({ outcome: 'passed', scan: { counts: { Low: 1 } } });
  });

  it('a later scan that blocks an image passed earlier says the signatures stay', async () => {
    const d = dig(10);
    await gate.onScan(HOST, 'p/app', d, report({ Low: 1 }, { completedAt: '2026-12-06T02:00:00Z', reportId: 'a' }), true);
    expect(await gate.check(input('p/app', d))).toMatchObject({ outcome: 'passed' });
    expect(await gate.onScan(HOST, 'p/app', d, report({ Critical: 1 }, { completedAt: '2026-12-06T03:00:00Z', reportId: 'b' }), true)).toEqual([
      push('p/app', d),
    ]);
    const r = await gate.check(input('p/app', d));
    expect(r).toMatchObject({
      outcome: 'blocked',
      reason:
        'scan found Critical:1: Critical is above require.scan.maxSeverity High; any signature written after an earlier passing scan stays (signet deletes no signature)',
    });
    // decided again on the same scan (a re-delivery): the same reason
    expect(await gate.check(input('p/app', d))).toEqual(r);
  });
});
