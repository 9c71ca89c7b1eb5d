/**
 * The scan gate (rules[].require.scan) end to end on a real registry (CNCF distribution) with
 * signet's receiver and worker on the real Redis: Harbor PUSH_ARTIFACT payloads built from the
 * recorded sample (test/fixtures/webhooks), scan events built from Harbor's model
 * (harbor-scanning_completed.json: `event_data.resources[].scan_overview` keyed by the report
 * MIME type, see src/scan/harbor.ts for the Harbor sources), and Harbor's artifact API played by
 * test/helpers/standins/harbor-api.ts (Basic auth with the registry's credentials).
 *
 * Shown: a scan below the threshold is signed (cosign verifies), above it skipped with the
 * counts (status, metric), a scan that ended before the push event is read from the API, a
 * missing scan ends failed(SCAN_TIMEOUT), SCANNING_FAILED failed(SCAN_FAILED), a re-delivered
 * scan event decides again without a new signature or count, a later scan with new findings is
 * recorded in status while the signature stays, an unauthenticated integration's scan is not
 * taken at its word, and the attestation of a gated image carries the scan that passed and
 * verifies with cosign 2.5 and 3.1.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backfill } from '../../src/backfill/backfill.js';
import { COSIGN3_BIN, cosignVerify, runCosign } from '../helpers/cosign.js';
import { cosign } from '../helpers/cosign-formats.js';
import { getManifest, MT, pushImage, RegistryClient, sigTag } from '../helpers/images.js';
import { emptyTrustedRoot } from '../helpers/rekor.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { GENERIC_VULN_REPORT, nativeReportSummary, startHarborApi, type HarborApiStandIn, type StandInScan } from '../helpers/standins/harbor-api.js';
import { deletePrefix, REDIS_URL, startSignet, tempKeyDir, uniquePrefix, waitFor, type KeyDir, type RunningSignet } from '../helpers/signet.js';

const SECRET = 'conditions-scan-secret-0123456789';
const PAGE_TOKEN = 'conditions-scan-page-token-0123456789';
const USER = 'robot$prod+signet';
const PASS = 'harbor-robot-secret-42';
const VSA = 'https://slsa.dev/verification_summary/v1';
const sample = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));

let registry: RunningRegistry;
let api: HarborApiStandIn;
let signet: RunningSignet;
let keys: KeyDir;
let H: string;

beforeAll(async () => {
  keys = tempKeyDir();
  writeFileSync(path.join(keys.dir, 'no-tlog-root.json'), emptyTrustedRoot());
  api = await startHarborApi({ username: USER, password: PASS });
  registry = await startRegistry();
  H = registry.host;
  signet = await startSignet(
    `
server: { statusPageToken: "${PAGE_TOKEN}" }
registries:
  - host: ${H}
    insecure: true
    aliases: ["harbor.example.com"]
    credentials: { username: "${USER}", password: "${PASS}" }
    harborApi: "${api.url}"
integrations:
  - { name: harbor, kind: harbor, secret: "${SECRET}" }
  - { name: harbor-open, kind: harbor, insecure: true }
keys:
  - { name: k, provider: file, path: k.pem }
rules:
  - match: "${H}/prod/quick/**"
    keys: [k]
    require: { scan: { maxSeverity: High, waitSeconds: 2 } }
  - match: "${H}/prod/attested/**"
    keys: [k]
    attest: true
    require: { scan: { maxSeverity: Medium, scanner: "Trivy", waitSeconds: 600 } }
  - match: "${H}/prod/**"
    keys: [k]
    require: { scan: { maxSeverity: High, scanner: "Triv?", waitSeconds: 600 } }
`,
    { baseDir: keys.dir },
  );
}, 60_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await api?.close();
  keys?.remove();
});

/** Harbor's Default PUSH_ARTIFACT payload (the recorded sample) for this push. */
function harborPush(repo: string, tag: string, digest: string) {
  const body = sample('harbor-push_artifact.json');
  body.operator = 'robot$prod+ci';
  body.event_data.resources = [{ digest, tag, resource_url: `harbor.example.com/${repo}:${tag}` }];
  const [namespace, ...rest] = repo.split('/');
  body.event_data.repository = { ...body.event_data.repository, namespace, name: rest.join('/'), repo_full_name: repo };
  return body;
}

/** A SCANNING_COMPLETED / SCANNING_FAILED payload as Harbor's scan handler builds it (the recorded sample, its overview replaced). */
function harborScan(type: 'SCANNING_COMPLETED' | 'SCANNING_FAILED', repo: string, tag: string, digest: string, scan: StandInScan) {
  const body = sample('harbor-scanning_completed.json');
  body.type = type;
  body.event_data.resources = [
    { digest, tag, resource_url: `harbor.example.com/${repo}:${tag}`, scan_overview: { [GENERIC_VULN_REPORT]: nativeReportSummary(scan) } },
  ];
  const [namespace, ...rest] = repo.split('/');
  body.event_data.repository = { ...body.event_data.repository, namespace, name: rest.join('/'), repo_full_name: repo };
  body.event_data.scan = { scan_type: 'vulnerability' };
  return body;
}

/** The same as a CloudEvent (harbor.scan.completed). */
function harborScanCloudEvent(repo: string, tag: string, digest: string, scan: StandInScan) {
  const d = harborScan('SCANNING_COMPLETED', repo, tag, digest, scan);
  return {
    specversion: '1.0',
    id: 'c1a5e1f0-5c4b-4a10-9d43-2f1f4b3a9e01',
    source: '/projects/7/webhook/policies/3',
    type: 'harbor.scan.completed',
    datacontenttype: 'application/json',
    time: '2025-08-21T08:00:52Z',
    data: d.event_data,
    operator: d.operator,
  };
}

async function post(body: unknown, integration = 'harbor', contentType = 'application/json') {
  const res = await fetch(`${signet.url}/hooks/${integration}`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(integration === 'harbor' ? { authorization: `Bearer ${SECRET}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
}

const pushEntry = async (repo: string, tag: string, digest: string) => (await signet.runtime.status.get(`${H}/${repo}`, digest, tag)).find((e) => !e.key);
const waitState = (repo: string, tag: string, digest: string, state: string, re?: RegExp) =>
  waitFor(`${repo}:${tag} ${state}`, async () => {
    const e = await pushEntry(repo, tag, digest);
    return e && e.state === state && (!re || re.test(e.reason ?? '')) ? e : undefined;
  });
const gateCount = async (outcome: string) => (await signet.metrics.scanGate.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
const hasSig = async (repo: string, digest: string) => (await getManifest(registry, repo, sigTag(digest))).status === 200;

/** Pushes an image and its PUSH_ARTIFACT; returns once the push waits for its scan (the API knows the artifact, unscanned). */
async function pushAndWait(repo: string, tag: string) {
  const img = await pushImage(registry, repo, tag);
  api.scans.set(`${repo}@${img.digest}`, undefined);
  const res = await post(harborPush(repo, tag, img.digest));
  expect(res.status).toBe(202);
  const entry = await waitState(repo, tag, img.digest, 'pending', /waiting for the registry's scan/);
  expect(entry.rule).toBeTypeOf('number');
  expect(await hasSig(repo, img.digest)).toBe(false);
  return img;
}

describe('require.scan on Harbor payloads, on a real registry', () => {
  it('a scan below the threshold arriving after the push: waits, then signed; cosign verifies; counts in status and the metric', async () => {
    const passed = await gateCount('passed');
    const img = await pushAndWait('prod/app', 'v1');
    // the worker asked Harbor's API with the registry's credentials before waiting
    expect(
      api.requests.some(
        (r) =>
          r.authorized && r.path.startsWith(`/api/v2.0/projects/prod/repositories/app/artifacts/${encodeURIComponent(img.digest)}?with_scan_overview=true`),
      ),
    ).toBe(true);
    const scanEvent = harborScan('SCANNING_COMPLETED', 'prod/app', 'v1', img.digest, { counts: { High: 1, Medium: 2, Low: 4 }, fixable: 3 });
    const res = await post(scanEvent);
    expect(res.status).toBe(202);
    expect(res.json.queued.map((q: { ref: string }) => q.ref)).toEqual([`harbor.example.com/prod/app:v1@${img.digest}`]);
    const entry = await waitState('prod/app', 'v1', img.digest, 'signed');
    expect(entry.scan).toEqual({ severity: 'High', counts: { High: 1, Medium: 2, Low: 4 }, scanner: 'Trivy' });
    const v = await cosignVerify(`${H}/prod/app:v1`, keys.pub);
    expect(v.ok, v.stderr).toBe(true);
    expect(await gateCount('passed')).toBe(passed + 1);

    // the same scan event again (Harbor retries a delivery): decided again, nothing new written or counted
    const again = await post(scanEvent);
    expect(again.status).toBe(202);
    await waitFor('re-decided', async () => {
      const e = await pushEntry('prod/app', 'v1', img.digest);
      return e?.requestId === again.json.requestId && e?.state === 'signed';
    });
    const sigs = (await signet.runtime.status.get(`${H}/prod/app`, img.digest, 'v1')).filter((e) => e.key);
    expect(sigs.length).toBeGreaterThan(0);
    expect(sigs.every((s) => s.state === 'signed' && s.reason === 'signature already present')).toBe(true);
    expect(await gateCount('passed')).toBe(passed + 1);
  }, 120_000);

  it('CloudEvents harbor.scan.completed decides the same way', async () => {
    const img = await pushAndWait('prod/ce', 'v1');
    const res = await post(harborScanCloudEvent('prod/ce', 'v1', img.digest, { counts: { Low: 1 } }), 'harbor', 'application/cloudevents+json');
    expect(res.status).toBe(202);
    await waitState('prod/ce', 'v1', img.digest, 'signed');
    expect(await hasSig('prod/ce', img.digest)).toBe(true);
  }, 60_000);

  it('a scan above the threshold: skipped with the counts (status and metric), nothing written', async () => {
    const blocked = await gateCount('blocked');
    const img = await pushAndWait('prod/bad', 'v1');
    const res = await post(harborScan('SCANNING_COMPLETED', 'prod/bad', 'v1', img.digest, { counts: { Critical: 2, High: 1 } }));
    expect(res.status).toBe(202);
    const entry = await waitState('prod/bad', 'v1', img.digest, 'skipped');
    expect(entry.reason).toBe('rule 2: scan found Critical:2 High:1: Critical is above require.scan.maxSeverity High');
    expect(entry.scan).toEqual({ severity: 'Critical', counts: { Critical: 2, High: 1 }, scanner: 'Trivy' });
    expect(await hasSig('prod/bad', img.digest)).toBe(false);
    expect(await gateCount('blocked')).toBe(blocked + 1);
    // the status page shows the decision with the counts
    const page = await (await fetch(`${signet.url}/ui`, { headers: { authorization: `Bearer ${PAGE_TOKEN}` } })).text();
    expect(page).toContain('rule 2: scan found Critical:2 High:1: Critical is above require.scan.maxSeverity High; scan Critical: Critical:2 High:1 (Trivy)');
    // and /metrics the outcome
    const metrics = await (await fetch(`${signet.url}/metrics`)).text();
    expect(metrics).toMatch(/^signet_scan_gate_total\{outcome="blocked"\} [1-9]/m);
  }, 60_000);

  it('a scan by another scanner than the rule names is not the scan it asks for: skipped', async () => {
    const img = await pushAndWait('prod/other', 'v1');
    await post(harborScan('SCANNING_COMPLETED', 'prod/other', 'v1', img.digest, { counts: {}, scanner: { name: 'Clair', vendor: 'CoreOS', version: '4' } }));
    const entry = await waitState('prod/other', 'v1', img.digest, 'skipped');
    expect(entry.reason).toBe('rule 2: scanned by "Clair", not by require.scan.scanner "Triv?"');
    expect(await hasSig('prod/other', img.digest)).toBe(false);
  }, 60_000);

  it('a scan that ended before the push event arrived is read from the API: signed at once', async () => {
    const img = await pushImage(registry, 'prod/early', 'v1');
    api.scans.set(`prod/early@${img.digest}`, { counts: { Medium: 1 } });
    const res = await post(harborPush('prod/early', 'v1', img.digest));
    expect(res.status).toBe(202);
    const entry = await waitState('prod/early', 'v1', img.digest, 'signed');
    expect(entry.scan).toEqual({ severity: 'Medium', counts: { Medium: 1 }, scanner: 'Trivy' });
    expect(await hasSig('prod/early', img.digest)).toBe(true);
  }, 60_000);

  it('SCANNING_FAILED ends as failed(SCAN_FAILED); nothing written', async () => {
    const failed = await gateCount('failed');
    const img = await pushAndWait('prod/broken', 'v1');
    const res = await post(harborScan('SCANNING_FAILED', 'prod/broken', 'v1', img.digest, { status: 'Error' }));
    expect(res.status).toBe(202);
    const entry = await waitState('prod/broken', 'v1', img.digest, 'failed');
    expect(entry.code).toBe('SCAN_FAILED');
    expect(entry.reason).toBe('the scan failed (scan_status Error)');
    expect(await hasSig('prod/broken', img.digest)).toBe(false);
    expect(await gateCount('failed')).toBe(failed + 1);
  }, 60_000);

  it('no scan within waitSeconds: failed(SCAN_TIMEOUT) once the delayed job wakes; nothing written', async () => {
    const timeouts = await gateCount('timeout');
    const img = await pushImage(registry, 'prod/quick/app', 'v1');
    api.scans.set(`prod/quick/app@${img.digest}`, undefined);
    expect((await post(harborPush('prod/quick/app', 'v1', img.digest))).status).toBe(202);
    const entry = await waitState('prod/quick/app', 'v1', img.digest, 'failed');
    expect(entry.code).toBe('SCAN_TIMEOUT');
    expect(entry.reason).toMatch(/^no scan of sha256:[0-9a-f]{12} within require\.scan\.waitSeconds \(2 s\) of the push$/);
    expect(await hasSig('prod/quick/app', img.digest)).toBe(false);
    expect(await gateCount('timeout')).toBe(timeouts + 1);
  }, 60_000);

  it('a later scan with new findings is recorded in status; the signature signet wrote stays', async () => {
    const img = await pushAndWait('prod/later', 'v1');
    await post(harborScan('SCANNING_COMPLETED', 'prod/later', 'v1', img.digest, { counts: { Low: 1 } }));
    await waitState('prod/later', 'v1', img.digest, 'signed');
    const rescan = await post(harborScan('SCANNING_COMPLETED', 'prod/later', 'v1', img.digest, { counts: { Critical: 1, Low: 1 } }));
    expect(rescan.status).toBe(202);
    const entry = await waitState('prod/later', 'v1', img.digest, 'skipped');
    expect(entry.reason).toBe(
      'rule 2: scan found Critical:1 Low:1: Critical is above require.scan.maxSeverity High; any signature written after an earlier passing scan stays (signet deletes no signature)',
    );
    expect(entry.scan).toMatchObject({ severity: 'Critical', counts: { Critical: 1, Low: 1 } });
    expect(await hasSig('prod/later', img.digest)).toBe(true);
  }, 60_000);

  it("an unauthenticated integration's scan is not taken: the API is asked, and its answer decides", async () => {
    const img = await pushAndWait('prod/forged', 'v1');
    // a forged clean scan through the insecure integration, while Harbor's API says Critical
    api.scans.set(`prod/forged@${img.digest}`, { counts: { Critical: 3 } });
    const res = await post(harborScan('SCANNING_COMPLETED', 'prod/forged', 'v1', img.digest, { counts: {} }), 'harbor-open');
    expect(res.status).toBe(202);
    const entry = await waitState('prod/forged', 'v1', img.digest, 'skipped');
    expect(entry.scan).toMatchObject({ severity: 'Critical', counts: { Critical: 3 } });
    expect(await hasSig('prod/forged', img.digest)).toBe(false);
  }, 60_000);

  it('a scan event for a digest no push waits for is recorded, nothing queued; an SBOM scan decides nothing', async () => {
    const img = await pushImage(registry, 'prod/none', 'v1');
    const res = await post(harborScan('SCANNING_COMPLETED', 'prod/none', 'v1', img.digest, { counts: {} }));
    expect(res.status).toBe(200);
    expect(res.json.ignored).toEqual([
      { reason: 'scan result recorded (Success); no push of this digest waits for it', ref: `harbor.example.com/prod/none@${img.digest}` },
    ]);
    const sbom = harborScan('SCANNING_COMPLETED', 'prod/none', 'v1', img.digest, { counts: {} });
    sbom.event_data.scan = { scan_type: 'sbom' };
    const r2 = await post(sbom);
    expect(r2.status).toBe(200);
    expect(r2.json.ignored[0].reason).toBe('SCANNING_COMPLETED of a "sbom" scan (only vulnerability scans decide a scan gate)');
    // the recorded scan decides the push when it comes: signed without waiting
    expect((await post(harborPush('prod/none', 'v1', img.digest))).status).toBe(202);
    await waitState('prod/none', 'v1', img.digest, 'signed');
  }, 60_000);

  it('backfill queues a gated image like any other; the worker reads its scan from the API and decides', async () => {
    const ok = await pushImage(registry, 'prod/backfilled', 'v1');
    const bad = await pushImage(registry, 'prod/backfilled', 'v2', { variant: 'bad' });
    api.scans.set(`prod/backfilled@${ok.digest}`, { counts: { Low: 2 } });
    api.scans.set(`prod/backfilled@${bad.digest}`, { counts: { Critical: 1 } });
    const rt = signet.runtime;
    const report = await backfill(
      { repo: 'prod/backfilled' },
      { registries: rt.registries, rules: rt.rules, keys: rt.keys, enqueue: (job) => signet.service.queue!.enqueue(job) },
    );
    expect(report.errors).toEqual([]);
    expect(report.toSign.map((m) => m.tag)).toEqual(['v1', 'v2']);
    const signed = await waitState('prod/backfilled', 'v1', ok.digest, 'signed');
    expect(signed.scan).toMatchObject({ counts: { Low: 2 } });
    const skipped = await waitState('prod/backfilled', 'v2', bad.digest, 'skipped');
    expect(skipped.reason).toBe('rule 2: scan found Critical:1: Critical is above require.scan.maxSeverity High');
    expect(await hasSig('prod/backfilled', bad.digest)).toBe(false);
  }, 60_000);

  it('attest: the VSA of a gated image carries the scan that passed; cosign 2.5 and 3.1 verify it', async () => {
    const img = await pushAndWait('prod/attested/app', 'v1');
    await post(
      harborScan('SCANNING_COMPLETED', 'prod/attested/app', 'v1', img.digest, {
        counts: { Medium: 2, Low: 1 },
        scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.56.2' },
      }),
    );
    await waitState('prod/attested/app', 'v1', img.digest, 'signed');
    const ref = `${H}/prod/attested/app@${img.digest}`;
    const v25 = await cosign([
      'verify-attestation',
      '--new-bundle-format',
      `--trusted-root=${path.join(keys.dir, 'no-tlog-root.json')}`,
      `--key=${keys.pub}`,
      '--insecure-ignore-tlog=true',
      `--type=${VSA}`,
      '--allow-http-registry',
      ref,
    ]);
    expect(v25.ok, v25.stderr).toBe(true);
    const v31 = await runCosign(
      ['verify-attestation', `--key=${keys.pub}`, '--insecure-ignore-tlog=true', `--type=${VSA}`, '--allow-http-registry=true', ref],
      { bin: COSIGN3_BIN(), cwd: keys.dir, timeoutMs: 120_000 },
    );
    expect(v31.code, v31.stderr).toBe(0);
    const printed = JSON.parse(v31.stdout.trim().split('\n')[0]!) as { payload: string };
    const st = JSON.parse(Buffer.from(printed.payload, 'base64').toString('utf8'));
    expect(st.predicate.verificationResult).toBe('PASSED');
    expect(st.predicate['urn:signet:scan']).toMatchObject({
      scanner: 'Trivy',
      scannerVersion: 'v0.56.2',
      maxSeverity: 'Medium',
      severity: 'Medium',
      counts: { Medium: 2, Low: 1 },
    });
    expect(st.predicate['urn:signet:scan'].completedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // the referrer is there next to the signature's bundle
    const idx = await new RegistryClient(registry).request('GET', `/v2/prod/attested/app/manifests/${img.digest.replace(':', '-')}`, {
      headers: { Accept: MT.ociIndex },
    });
    expect(idx.status).toBe(200);
  }, 180_000);
});

describe('require.scan across a restart of signet', () => {
  it('the waiting records and the delayed job are in Redis: a new signet decides the scan event, and times out the other push', async () => {
    const prefix = uniquePrefix();
    const yaml = `
registries:
  - host: ${H}
    insecure: true
    aliases: ["harbor.example.com"]
    credentials: { username: "${USER}", password: "${PASS}" }
    harborApi: "${api.url}"
integrations:
  - { name: harbor, kind: harbor, secret: "${SECRET}" }
keys:
  - { name: k, provider: file, path: k.pem }
rules:
  - match: "${H}/restart/**"
    keys: [k]
    require: { scan: { maxSeverity: High, waitSeconds: 4 } }
`;
    // redisUrl given: stop() leaves the prefix's keys in Redis (deleted at the end)
    const first = await startSignet(yaml, { baseDir: keys.dir, prefix, redisUrl: REDIS_URL });
    let second: RunningSignet | undefined;
    try {
      const scanned = await pushImage(registry, 'restart/app', 'v1');
      const forgotten = await pushImage(registry, 'restart/app', 'v2', { variant: 'forgotten' });
      for (const img of [scanned, forgotten]) api.scans.set(`restart/app@${img.digest}`, undefined);
      const post1 = (body: unknown, to: RunningSignet) =>
        fetch(`${to.url}/hooks/harbor`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
          body: JSON.stringify(body),
        });
      expect((await post1(harborPush('restart/app', 'v1', scanned.digest), first)).status).toBe(202);
      expect((await post1(harborPush('restart/app', 'v2', forgotten.digest), first)).status).toBe(202);
      const entryIn = async (sg: RunningSignet, tag: string, digest: string) =>
        (await sg.runtime.status.get(`${H}/restart/app`, digest, tag)).find((e) => !e.key);
      for (const [tag, img] of [
        ['v1', scanned],
        ['v2', forgotten],
      ] as const) {
        await waitFor(
          `${tag} waiting`,
          async () =>
            (await entryIn(first, tag, img.digest))?.state === 'pending' &&
            /waiting for the registry's scan/.test((await entryIn(first, tag, img.digest))?.reason ?? ''),
        );
      }
      await first.stop();

      second = await startSignet(yaml, { baseDir: keys.dir, prefix, redisUrl: REDIS_URL });
      const res = await post1(harborScan('SCANNING_COMPLETED', 'restart/app', 'v1', scanned.digest, { counts: { Low: 1 } }), second);
      expect(res.status).toBe(202);
      const s2 = second;
      await waitFor('v1 signed by the new signet', async () => (await entryIn(s2, 'v1', scanned.digest))?.state === 'signed');
      expect(await hasSig('restart/app', scanned.digest)).toBe(true);
      const timedOut = await waitFor('v2 timed out in the new signet', async () => {
        const e = await entryIn(s2, 'v2', forgotten.digest);
        return e?.state === 'failed' ? e : undefined;
      });
      expect(timedOut.code).toBe('SCAN_TIMEOUT');
      expect(await hasSig('restart/app', forgotten.digest)).toBe(false);
    } finally {
      await second?.stop();
      await deletePrefix(prefix);
    }
  }, 90_000);
});
