/**
 * A local stand-in for the one Harbor API call the scan gate makes: `GET
 * /api/v2.0/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}
 * ?with_scan_overview=true` (goharbor/harbor api/v2.0/swagger.yaml, operationId getArtifact;
 * the repository name without its project, URL-encoded twice: "a/b -> a%2Fb -> a%252Fb").
 *
 * - Basic auth with the registry's credentials (`username`/`password`): anything else is 401
 *   with Harbor's error body `{"errors":[{"code":"UNAUTHORIZED",...}]}`.
 * - The artifact is answered from `scans` (keyed `<project>/<repo>@<digest>`): an Artifact with
 *   `digest` and, when with_scan_overview=true, `scan_overview` keyed by the report MIME type
 *   (`application/vnd.security.vulnerability.report; version=1.1`) holding a
 *   NativeReportSummary (report_id, scan_status, severity, duration, summary {total, fixable,
 *   summary {Critical: n, ...}}, start_time, end_time, scanner {name, vendor, version},
 *   complete_percent), as src/pkg/scan/vuln/summary.go marshals it. An artifact set with
 *   `known` but no scan is answered without a scan_overview (Harbor's "not scanned" artifact);
 *   any other reference is 404 NOT_FOUND.
 * - `requests` records each call (path as received, whether its credentials were right).
 * Listens on 127.0.0.1 only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const GENERIC_VULN_REPORT = 'application/vnd.security.vulnerability.report; version=1.1';

export interface StandInScan {
  status?: 'Success' | 'Error' | 'Stopped' | 'Running' | 'Pending';
  /** Findings per severity (Harbor's summary.summary). */
  counts?: Record<string, number>;
  scanner?: { name: string; vendor: string; version: string };
  fixable?: number;
}

/** A NativeReportSummary as Harbor marshals it (a scan that did not succeed has no severity, summary or scanner). */
export function nativeReportSummary(scan: StandInScan, now = new Date()): Record<string, unknown> {
  const status = scan.status ?? 'Success';
  const start = new Date(now.getTime() - 12_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const end = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const base = { report_id: `report-${Math.random().toString(16).slice(2, 10)}`, scan_status: status, duration: 12, start_time: start, end_time: end };
  if (status !== 'Success') return { ...base, severity: '', summary: null, complete_percent: 0 };
  const counts = scan.counts ?? {};
  const order = ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown'];
  const severity = order.find((s) => (counts[s] ?? 0) > 0) ?? 'None';
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    ...base,
    severity,
    summary: { total, fixable: scan.fixable ?? 0, summary: counts },
    scanner: scan.scanner ?? { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.56.2' },
    complete_percent: 100,
  };
}

export interface HarborApiStandIn {
  url: string;
  /** `<project>/<repo>@<digest>` -> the scan Harbor has (undefined: known, not scanned). */
  scans: Map<string, StandInScan | undefined>;
  requests: { path: string; authorized: boolean }[];
  close(): Promise<void>;
}

export async function startHarborApi(opts: { username: string; password: string }): Promise<HarborApiStandIn> {
  const expected = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`;
  const s: HarborApiStandIn = { url: '', scans: new Map(), requests: [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const authorized = req.headers.authorization === expected;
    s.requests.push({ path: req.url ?? '', authorized });
    if (!authorized) return send(401, { errors: [{ code: 'UNAUTHORIZED', message: 'unauthorized' }] });
    // the raw path: the repository segment is encoded twice, so it is decoded twice
    const m = /^\/api\/v2\.0\/projects\/([^/]+)\/repositories\/([^/]+)\/artifacts\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || !m) return send(404, { errors: [{ code: 'NOT_FOUND', message: 'no route' }] });
    const project = decodeURIComponent(m[1]!);
    const repo = decodeURIComponent(decodeURIComponent(m[2]!));
    const reference = decodeURIComponent(m[3]!);
    const id = `${project}/${repo}@${reference}`;
    if (!s.scans.has(id)) return send(404, { errors: [{ code: 'NOT_FOUND', message: `artifact ${id} not found` }] });
    const scan = s.scans.get(id);
    const artifact: Record<string, unknown> = {
      id: 1,
      type: 'IMAGE',
      digest: reference,
      repository_name: `${project}/${repo}`,
      media_type: 'application/vnd.oci.image.config.v1+json',
    };
    if (scan && url.searchParams.get('with_scan_overview') === 'true') {
      const accept = String(req.headers['x-accept-vulnerabilities'] ?? GENERIC_VULN_REPORT);
      if (accept.includes(GENERIC_VULN_REPORT)) artifact['scan_overview'] = { [GENERIC_VULN_REPORT]: nativeReportSummary(scan) };
    }
    send(200, artifact);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return s;
}
