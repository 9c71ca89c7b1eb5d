/**
 * Harbor's vulnerability scan results, as its webhooks and its artifact API report them, read
 * into a ScanReport (src/config/conditions.ts) for the scan gate; and the one Harbor API call the
 * gate makes.
 *
 * Shapes (goharbor/harbor @ c50c7ddd6e):
 * - `scan_overview` is a map keyed by the report MIME type (src/pkg/scan/vulnerability/vul.go
 *   GetSummary: `summaries[rp.MimeType]`), either `application/vnd.security.vulnerability.report;
 *   version=1.1` (v1.MimeTypeGenericVulnerabilityReport) or `application/vnd.scanner.adapter.vuln.
 *   report.harbor+json; version=1.0` (v1.MimeTypeNativeReport), src/pkg/scan/rest/v1/spec.go.
 * - each value is a NativeReportSummary (src/pkg/scan/vuln/summary.go; swagger
 *   `definitions/NativeReportSummary`): `report_id`, `scan_status` (job status: Success, Error,
 *   Stopped, Pending, Running), `severity`, `duration`, `summary: {total, fixable, summary:
 *   {Critical: n, ...}}`, `start_time`, `end_time`, `scanner: {name, vendor, version}`,
 *   `complete_percent`. For a scan that did not succeed Harbor sends only the status, the report
 *   id and the times (src/pkg/scan/report/summary.go GenerateNativeSummary: "If the status is not
 *   success, there will not be any report"): no severity, summary or scanner.
 * - the webhook (SCANNING_COMPLETED / SCANNING_FAILED / SCANNING_STOPPED, CloudEvents
 *   `harbor.scan.completed|failed|stopped`) carries it in `event_data.resources[].scan_overview`
 *   (src/controller/event/handler/webhook/scan/scan.go constructScanImagePayload), with
 *   `event_data.scan.scan_type` `vulnerability` or `sbom`.
 * - the API: `GET /api/v2.0/projects/{project_name}/repositories/{repository_name}/artifacts/
 *   {reference}?with_scan_overview=true` (api/v2.0/swagger.yaml operationId getArtifact), the
 *   repository name without its project and URL-encoded twice ("a/b -> a%2Fb -> a%252Fb"), the
 *   report types in `X-Accept-Vulnerabilities`; the artifact's `scan_overview` as above.
 */
import { Agent } from 'undici';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ScanReport } from '../config/conditions.js';
import type { RegistryConfig } from '../config/schema.js';
import { ServiceClient } from '../edge/service-client.js';
import { SignetError } from '../errors.js';
import { createCredentialSource, type CredentialSource } from '../registry/credentials/index.js';

export const GENERIC_VULN_REPORT = 'application/vnd.security.vulnerability.report; version=1.1';
export const NATIVE_VULN_REPORT = 'application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0';
/** In the order Harbor's own default X-Accept-Vulnerabilities names them. */
const REPORT_TYPES = [GENERIC_VULN_REPORT, NATIVE_VULN_REPORT];

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * The vulnerability report in a `scan_overview` map, or undefined when it has none (no scan
 * yet, an SBOM overview, a shape signet does not know). The generic v1.1 report is preferred,
 * as Harbor's default `X-Accept-Vulnerabilities` prefers it.
 */
export function reportFromOverview(overview: unknown): ScanReport | undefined {
  if (!overview || typeof overview !== 'object' || Array.isArray(overview)) return undefined;
  const o = overview as Record<string, unknown>;
  const key = REPORT_TYPES.find((t) => o[t] && typeof o[t] === 'object');
  if (!key) return undefined;
  const s = o[key] as Record<string, unknown>;
  const status = str(s['scan_status']);
  if (!status) return undefined;
  const sum = s['summary'] && typeof s['summary'] === 'object' ? (s['summary'] as Record<string, unknown>) : undefined;
  const counts: Record<string, number> = {};
  const bySeverity = sum?.['summary'];
  if (bySeverity && typeof bySeverity === 'object' && !Array.isArray(bySeverity)) {
    for (const [sev, n] of Object.entries(bySeverity as Record<string, unknown>)) {
      const c = num(n);
      if (c !== undefined && c >= 0 && sev.length <= 40) counts[sev] = c;
    }
  }
  const sc = s['scanner'] && typeof s['scanner'] === 'object' ? (s['scanner'] as Record<string, unknown>) : undefined;
  const name = str(sc?.['name']);
  const endTime = str(s['end_time']);
  return {
    status,
    severity: str(s['severity']) ?? '',
    counts,
    ...(num(sum?.['total']) !== undefined ? { total: num(sum?.['total']) } : {}),
    ...(num(sum?.['fixable']) !== undefined ? { fixable: num(sum?.['fixable']) } : {}),
    ...(name
      ? {
          scanner: {
            name,
            ...(str(sc?.['vendor']) ? { vendor: str(sc?.['vendor']) } : {}),
            ...(str(sc?.['version']) ? { version: str(sc?.['version']) } : {}),
          },
        }
      : {}),
    ...(str(s['report_id']) ? { reportId: str(s['report_id']) } : {}),
    // Go's zero time ("0001-01-01T00:00:00Z") is what an unset end time marshals to
    ...(endTime && !endTime.startsWith('0001-') ? { completedAt: endTime } : {}),
  };
}

/** The artifact API of one Harbor, for the registry it serves. */
export interface HarborApi {
  /** The artifact's vulnerability report, or undefined when it has none yet (or Harbor does not know the artifact). */
  scanOf(repository: string, digest: string): Promise<ScanReport | undefined>;
  close(): Promise<void>;
}

/** Harbor's base URL for a registry: `registries[].harborApi`, else the registry's own scheme and host (Harbor serves /api/v2.0 there). */
export function harborBase(cfg: Pick<RegistryConfig, 'host' | 'insecure'> & { harborApi?: string | undefined }): string {
  return (cfg.harborApi ?? `${cfg.insecure ? 'http' : 'https'}://${cfg.host}`).replace(/\/+$/, '');
}

/**
 * A client for `GET .../artifacts/{digest}?with_scan_overview=true`, authenticated with HTTP
 * Basic and the registry's username/password credentials (a Harbor user or robot account with
 * pull access to the project: the same account signet pushes signatures with). Bearer-token
 * and cloud credentials are not accepted by Harbor's API: with those, the call is refused.
 */
export function createHarborApi(
  cfg: RegistryConfig & { harborApi?: string | undefined },
  opts: { baseDir?: string; credentials?: CredentialSource } = {},
): HarborApi {
  const base = harborBase(cfg);
  const ca = cfg.caFile ? readFileSync(path.resolve(opts.baseDir ?? '.', cfg.caFile)) : undefined;
  const dispatcher = new Agent({
    connections: 8,
    keepAliveTimeout: 10_000,
    headersTimeout: cfg.timeoutMs,
    bodyTimeout: cfg.timeoutMs,
    connect: { timeout: Math.min(cfg.timeoutMs, 10_000), ...(ca ? { ca } : {}) },
  });
  const service = new ServiceClient({
    name: `harbor ${base}`,
    unavailable: 'SCAN_API_UNAVAILABLE',
    rejected: 'REGISTRY_PROTOCOL',
    timeoutMs: cfg.timeoutMs,
    maxBodyBytes: 1024 * 1024,
    dispatcher,
  });
  const credentials =
    opts.credentials ??
    createCredentialSource(cfg.credentials, { host: cfg.host, insecure: cfg.insecure, baseDir: opts.baseDir ?? '.', dispatcher, timeoutMs: cfg.timeoutMs });

  async function authorization(): Promise<Record<string, string>> {
    if (!credentials) return {};
    const c = await credentials.get();
    if ('username' in c && 'password' in c && typeof c.password === 'string') {
      return { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` };
    }
    throw new SignetError('REGISTRY_AUTH_FAILED', `harbor ${base}: the scan API needs username/password credentials (${credentials.describe()} gives a token)`);
  }

  return {
    async scanOf(repository, digest) {
      const slash = repository.indexOf('/');
      if (slash <= 0) return undefined; // every Harbor repository is <project>/<name>
      const project = repository.slice(0, slash);
      const name = repository.slice(slash + 1);
      const url = new URL(
        `${base}/api/v2.0/projects/${encodeURIComponent(project)}/repositories/${encodeURIComponent(encodeURIComponent(name))}/artifacts/${encodeURIComponent(digest)}?with_scan_overview=true&with_tag=false`,
      );
      const reply = await service.withRetry(async () =>
        service.send(
          url,
          { method: 'GET', headers: { accept: 'application/json', 'x-accept-vulnerabilities': REPORT_TYPES.join(', '), ...(await authorization()) } },
          `GET artifact ${project}/${name}@${digest.slice(0, 19)}`,
        ),
      );
      if (reply.status === 404) return undefined;
      if (reply.status === 401 || reply.status === 403) {
        if (reply.status === 401) credentials?.invalidate();
        throw new SignetError('REGISTRY_AUTH_FAILED', `harbor ${base}: the scan API refused signet's credentials (HTTP ${reply.status})`, {
          status: reply.status,
        });
      }
      if (reply.status !== 200)
        throw new SignetError('REGISTRY_PROTOCOL', `harbor ${base}: GET artifact answered HTTP ${reply.status}${service.detail(reply.body)}`, {
          status: reply.status,
        });
      let doc: unknown;
      try {
        doc = JSON.parse(reply.body.toString('utf8'));
      } catch {
        throw new SignetError('REGISTRY_PROTOCOL', `harbor ${base}: GET artifact answered something that is not JSON`);
      }
      const d = doc as { digest?: unknown; scan_overview?: unknown };
      if (typeof d?.digest === 'string' && d.digest !== digest) {
        throw new SignetError('REGISTRY_PROTOCOL', `harbor ${base}: GET artifact ${digest.slice(0, 19)} answered artifact ${d.digest.slice(0, 19)}`);
      }
      return reportFromOverview(d?.scan_overview);
    },
    async close() {
      await service.close();
      await dispatcher.close();
    },
  };
}
