/**
 * src/scan/harbor.ts: reading Harbor's scan_overview (the recorded SCANNING_COMPLETED sample and
 * summaries built as Harbor's summary.go marshals them), the Harbor adapter's scan events
 * (Default and CloudEvents, failed, SBOM), and the artifact API client against the stand-in
 * (Basic auth with the registry's credentials, the twice-encoded repository, 404, 401, token
 * credentials refused).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registrySchema } from '../../../src/config/schema.js';
import { createHarborApi, GENERIC_VULN_REPORT, harborBase, NATIVE_VULN_REPORT, reportFromOverview } from '../../../src/scan/harbor.js';
import { webhookAdapters } from '../../../src/webhooks/adapters/index.js';
import { nativeReportSummary, startHarborApi, type HarborApiStandIn } from '../../helpers/standins/harbor-api.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/webhooks/${name}`, import.meta.url), 'utf8'));
const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';
const a = webhookAdapters.harbor;
const ctx = { integration: a.configSchema.parse({ name: 'h', kind: 'harbor', secret: 'harbor-secret-0123456789' }), headers: {} };

describe('reportFromOverview', () => {
  it('reads the recorded SCANNING_COMPLETED sample', () => {
    const overview = fixture('harbor-scanning_completed.json').event_data.resources[0].scan_overview;
    expect(reportFromOverview(overview)).toEqual({
      status: 'Success',
      severity: 'High',
      counts: { High: 1, Medium: 2 },
      total: 3,
      fixable: 2,
      scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.56.2' },
      reportId: '5e6f1c2a-1b0c-4d1e-9a77-2b0b5f0e9c11',
      completedAt: '2025-08-21T08:00:52Z',
    });
  });
  it('takes the native v1.0 report type too, prefers the generic v1.1 one', () => {
    const v10 = { ...nativeReportSummary({ counts: { Low: 1 } }) };
    expect(reportFromOverview({ [NATIVE_VULN_REPORT]: v10 })).toMatchObject({ status: 'Success', severity: 'Low', counts: { Low: 1 } });
    const both = { [NATIVE_VULN_REPORT]: v10, [GENERIC_VULN_REPORT]: nativeReportSummary({ counts: { Critical: 1 } }) };
    expect(reportFromOverview(both)).toMatchObject({ severity: 'Critical' });
  });
  it('a failed scan (Harbor sends no severity, summary or scanner) is its status alone; Go zero times are no time', () => {
    const failed = {
      report_id: 'r',
      scan_status: 'Error',
      severity: '',
      duration: 0,
      summary: null,
      start_time: '0001-01-01T00:00:00Z',
      end_time: '0001-01-01T00:00:00Z',
      complete_percent: 0,
    };
    expect(reportFromOverview({ [GENERIC_VULN_REPORT]: failed })).toEqual({ status: 'Error', severity: '', counts: {}, reportId: 'r' });
  });
  it('no vulnerability report (nothing, an SBOM overview, junk) is undefined', () => {
    expect(reportFromOverview(undefined)).toBeUndefined();
    expect(reportFromOverview({})).toBeUndefined();
    expect(reportFromOverview({ 'application/vnd.security.sbom.report+json; version=1.0': { scan_status: 'Success' } })).toBeUndefined();
    expect(reportFromOverview({ [GENERIC_VULN_REPORT]: 'x' })).toBeUndefined();
    expect(reportFromOverview({ [GENERIC_VULN_REPORT]: { scan_status: 'Success', summary: { summary: { High: 'many', Low: -1, Medium: 2 } } } })).toMatchObject(
      { counts: { Medium: 2 } },
    );
  });
});

describe('harbor adapter: scan events', () => {
  it('SCANNING_COMPLETED (the recorded sample): one scan, no push', () => {
    const r = a.parse(fixture('harbor-scanning_completed.json'), ctx);
    expect(r.events).toEqual([]);
    expect(r.ignored).toEqual([]);
    expect(r.scans).toEqual([
      {
        host: 'harbor.example.com',
        repository: 'team-a/app/api',
        digest: D,
        tag: 'v1.2.3',
        report: expect.objectContaining({ status: 'Success', counts: { High: 1, Medium: 2 } }),
      },
    ]);
  });
  it('CloudEvents harbor.scan.completed carries the same in data', () => {
    const d = fixture('harbor-scanning_completed.json');
    const ce = { specversion: '1.0', id: 'x', type: 'harbor.scan.completed', data: d.event_data, operator: 'auto' };
    expect(a.parse(ce, ctx).scans?.[0]).toMatchObject({ repository: 'team-a/app/api', digest: D, report: { severity: 'High' } });
  });
  it('SCANNING_FAILED / SCANNING_STOPPED without an overview: the status their type implies; a scan of a digest without tag', () => {
    const p = fixture('harbor-scanning_completed.json');
    p.type = 'SCANNING_FAILED';
    delete p.event_data.resources[0].scan_overview;
    p.event_data.resources[0].tag = '';
    p.event_data.resources[0].resource_url = `harbor.example.com/team-a/app/api@${D}`;
    expect(a.parse(p, ctx).scans).toEqual([
      { host: 'harbor.example.com', repository: 'team-a/app/api', digest: D, report: { status: 'Error', severity: '', counts: {} } },
    ]);
    p.type = 'harbor.scan.stopped';
    expect(a.parse({ specversion: '1.0', type: p.type, data: p.event_data }, ctx).scans?.[0]?.report.status).toBe('Stopped');
  });
  it('a completed scan without a vulnerability overview, an SBOM scan, a resource without digest: ignored with the reason', () => {
    const p = fixture('harbor-scanning_completed.json');
    p.event_data.scan = { scan_type: 'sbom' };
    expect(a.parse(p, ctx).ignored[0]!.reason).toBe('SCANNING_COMPLETED of a "sbom" scan (only vulnerability scans decide a scan gate)');
    delete p.event_data.scan;
    delete p.event_data.resources[0].scan_overview;
    expect(a.parse(p, ctx).ignored[0]!.reason).toBe('SCANNING_COMPLETED without a vulnerability scan_overview');
    delete p.event_data.resources[0].digest;
    expect(a.parse(p, ctx).ignored[0]!.reason).toBe('SCANNING_COMPLETED without resource_url, repository name or digest');
  });
});

describe('Harbor artifact API client (against the stand-in)', () => {
  let api: HarborApiStandIn;
  const cfg = (extra: Record<string, unknown> = {}) =>
    registrySchema.parse({ host: 'harbor.example.com', credentials: { username: 'robot$p+signet', password: 'pw-0123' }, harborApi: api.url, ...extra });
  beforeAll(async () => {
    api = await startHarborApi({ username: 'robot$p+signet', password: 'pw-0123' });
  });
  afterAll(() => api.close());

  it('the base URL: harborApi, else the registry scheme and host', () => {
    expect(harborBase({ host: 'harbor.example.com', insecure: false })).toBe('https://harbor.example.com');
    expect(harborBase({ host: '127.0.0.1:8080', insecure: true, harborApi: 'http://x:1/' })).toBe('http://x:1');
  });

  it('reads the scan of a nested repository (encoded twice) with Basic auth; unknown is undefined; unscanned is undefined', async () => {
    api.scans.set(`p/team/app@${D}`, { counts: { Critical: 1 } });
    const c = createHarborApi(cfg());
    try {
      expect(await c.scanOf('p/team/app', D)).toMatchObject({ status: 'Success', severity: 'Critical', counts: { Critical: 1 }, scanner: { name: 'Trivy' } });
      expect(api.requests.at(-1)).toEqual({
        path: `/api/v2.0/projects/p/repositories/team%252Fapp/artifacts/${encodeURIComponent(D)}?with_scan_overview=true&with_tag=false`,
        authorized: true,
      });
      expect(await c.scanOf('p/other', D)).toBeUndefined();
      api.scans.set(`p/unscanned@${D}`, undefined);
      expect(await c.scanOf('p/unscanned', D)).toBeUndefined();
      expect(await c.scanOf('noproject', D)).toBeUndefined();
    } finally {
      await c.close();
    }
  });

  it('wrong credentials: REGISTRY_AUTH_FAILED; token credentials are not sent to the API', async () => {
    const wrong = createHarborApi(cfg({ credentials: { username: 'robot$p+signet', password: 'nope' } }));
    await expect(wrong.scanOf('p/team/app', D)).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED', message: expect.stringContaining('HTTP 401') });
    await wrong.close();
    const token = createHarborApi(cfg({ credentials: { token: 'tok' } }));
    const before = api.requests.length;
    await expect(token.scanOf('p/team/app', D)).rejects.toMatchObject({
      code: 'REGISTRY_AUTH_FAILED',
      message: expect.stringContaining('needs username/password'),
    });
    expect(api.requests.length).toBe(before);
    await token.close();
  });

  it('an unreachable Harbor is SCAN_API_UNAVAILABLE (retryable)', async () => {
    const gone = createHarborApi(cfg({ harborApi: 'http://127.0.0.1:9', timeoutMs: 500 }));
    await expect(gone.scanOf('p/team/app', D)).rejects.toMatchObject({ code: 'SCAN_API_UNAVAILABLE', retryable: true });
    await gone.close();
  });
});
