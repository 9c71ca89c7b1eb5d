/** The scan gate's pure parts (src/config/conditions.ts): require.scan's schema, severity order, scanVerdict; and the config check (validate.ts scanReach). */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../../src/config/load.js';
import { countsText, requireSchema, scanVerdict, severityRank, worstSeverity, type ScanReport } from '../../../src/config/conditions.js';

const ok = (counts: Record<string, number>, extra: Partial<ScanReport> = {}): ScanReport => ({
  status: 'Success',
  severity: '',
  counts,
  scanner: { name: 'Trivy', version: 'v0.56.2' },
  ...extra,
});

describe('require.scan schema', () => {
  it('maxSeverity is one of Harbor severities; waitSeconds defaults to 900; scanner optional; nothing else', () => {
    expect(requireSchema.parse({ scan: { maxSeverity: 'High' } })).toEqual({ scan: { maxSeverity: 'High', waitSeconds: 900 } });
    expect(requireSchema.parse({ scan: { maxSeverity: 'None', scanner: 'Trivy', waitSeconds: 60 } }).scan).toEqual({
      maxSeverity: 'None',
      scanner: 'Trivy',
      waitSeconds: 60,
    });
    expect(requireSchema.safeParse({ scan: { maxSeverity: 'high' } }).success).toBe(false);
    expect(requireSchema.safeParse({ scan: { maxSeverity: 'High', waitSeconds: 0 } }).success).toBe(false);
    expect(requireSchema.safeParse({ scan: { maxSeverity: 'High', extra: 1 } }).success).toBe(false);
    expect(requireSchema.safeParse({ scan: {} }).success).toBe(false);
  });
});

describe('severity order', () => {
  it('None < Unknown < Negligible < Low < Medium < High < Critical < anything unrecognised', () => {
    const order = ['None', 'Unknown', 'Negligible', 'Low', 'Medium', 'High', 'Critical', 'Catastrophic'];
    for (let i = 1; i < order.length; i++) expect(severityRank(order[i]!)).toBeGreaterThan(severityRank(order[i - 1]!));
    expect(severityRank('critical')).toBe(severityRank('Critical'));
  });
  it('the worst severity is the reported one or the worst with findings, whichever is worse (Harbor reports None for Unknown-only findings)', () => {
    expect(worstSeverity({ severity: 'None', counts: { Unknown: 2 } })).toBe('Unknown');
    expect(worstSeverity({ severity: 'High', counts: { Low: 1 } })).toBe('High');
    expect(worstSeverity({ severity: '', counts: {} })).toBe('None');
    expect(worstSeverity({ severity: 'Low', counts: { Critical: 0, Low: 1 } })).toBe('Low');
  });
  it('counts are written worst first, zeros left out', () => {
    expect(countsText({ Low: 5, Critical: 1, High: 0, Medium: 2 })).toBe('Critical:1 Medium:2 Low:5');
  });
});

describe('scanVerdict', () => {
  const high = { maxSeverity: 'High' as const, waitSeconds: 900 };
  it('nothing above maxSeverity passes; something above is blocked with the counts', () => {
    expect(scanVerdict(high, ok({ High: 3, Low: 1 }, { severity: 'High' }))).toEqual({ outcome: 'passed', severity: 'High' });
    expect(scanVerdict(high, ok({}, { severity: 'None' }))).toEqual({ outcome: 'passed', severity: 'None' });
    expect(scanVerdict(high, ok({ Critical: 1, High: 2 }, { severity: 'Critical' }))).toEqual({
      outcome: 'blocked',
      severity: 'Critical',
      reason: 'scan found Critical:1 High:2: Critical is above require.scan.maxSeverity High',
    });
  });
  it('maxSeverity None blocks any finding, Unknown ones included', () => {
    expect(scanVerdict({ maxSeverity: 'None', waitSeconds: 1 }, ok({ Unknown: 1 }, { severity: 'None' })).outcome).toBe('blocked');
  });
  it('an unrecognised severity never passes, even under Critical', () => {
    expect(scanVerdict({ maxSeverity: 'Critical', waitSeconds: 1 }, ok({ Apocalyptic: 1 })).outcome).toBe('blocked');
  });
  it('a failed or stopped scan fails; a scan not finished is no verdict to pass on', () => {
    expect(scanVerdict(high, { status: 'Error', severity: '', counts: {} })).toEqual({ outcome: 'failed', reason: 'the scan failed (scan_status Error)' });
    expect(scanVerdict(high, { status: 'Stopped', severity: '', counts: {} }).outcome).toBe('failed');
    expect(scanVerdict(high, { status: 'Running', severity: '', counts: {} }).outcome).toBe('failed');
  });
  it('scanner: a glob over the scanner name; another or an unnamed scanner is blocked', () => {
    const trivy = { ...high, scanner: 'Triv*' };
    expect(scanVerdict(trivy, ok({})).outcome).toBe('passed');
    expect(scanVerdict(trivy, ok({}, { scanner: { name: 'Clair' } }))).toMatchObject({
      outcome: 'blocked',
      reason: 'scanned by "Clair", not by require.scan.scanner "Triv*"',
    });
    expect(scanVerdict(trivy, ok({}, { scanner: undefined }))).toMatchObject({
      outcome: 'blocked',
      reason: 'scanned by an unnamed scanner, not by require.scan.scanner "Triv*"',
    });
  });
});

const SECRET = 'a-long-enough-secret-value';
const configWith = (integrations: string, match = '127.0.0.1:5000/prod/**') => `
registries:
  - host: 127.0.0.1:5000
    insecure: true
integrations:
${integrations}
keys:
  - { name: dev, provider: file, path: ./keys/dev.key }
rules:
  - match: "${match}"
    keys: [dev]
    require: { scan: { maxSeverity: High } }
`;

function problemsOf(text: string): { path: string; message: string }[] {
  try {
    parseConfigText(text, 'signet.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => ({ path: p.path.map(String).join('.'), message: p.message }));
  }
  return [];
}

describe('config check: require.scan needs integrations that report scans', () => {
  it('harbor alone: no problem; registries[].harborApi must be an http(s) URL without credentials', () => {
    expect(problemsOf(configWith(`  - { name: h, kind: harbor, secret: ${SECRET} }`))).toEqual([]);
    const bad = configWith(`  - { name: h, kind: harbor, secret: ${SECRET} }`).replace(
      '    insecure: true\n',
      '    insecure: true\n    harborApi: "https://u:p@harbor.example.com"\n',
    );
    expect(problemsOf(bad).map((p) => p.path)).toEqual(['registries.0.harborApi']);
  });
  it("quay: an error at rules[i].require.scan with Quay's limit; distribution: an error too", () => {
    expect(problemsOf(configWith(`  - { name: h, kind: harbor, secret: ${SECRET} }\n  - { name: q, kind: quay, secret: ${SECRET} }`))).toEqual([
      {
        path: 'rules.0.require.scan',
        message:
          'rule 0 has require.scan but is reached through integration "q" (kind quay): Quay notifies vulnerability_found only when something is found, never a clean scan, so its pushes to 127.0.0.1:5000 could never pass the gate (see docs/conditions.md)',
      },
    ]);
    expect(problemsOf(configWith(`  - { name: d, kind: distribution, secret: ${SECRET} }`))[0]).toMatchObject({
      path: 'rules.0.require.scan',
      message: expect.stringContaining('(kind distribution): it sends no scan results and has no scan API signet reads'),
    });
  });
  it('an insecure harbor integration: a warning (its scan results are not taken, the API is asked)', () => {
    const loaded = parseConfigText(configWith('  - { name: open, kind: harbor, insecure: true }'), 'signet.yaml', {});
    expect(loaded.warnings.map((w) => ({ path: w.path.map(String).join('.'), message: w.message }))).toContainEqual({
      path: 'rules.0.require.scan',
      message: 'integration "open" accepts unauthenticated webhooks: its scan results are not taken for rule 0, signet asks the registry\'s scan API instead',
    });
  });
  it("an integration that cannot reach the rule's registry is no problem (ECR hosts only)", () => {
    expect(problemsOf(configWith(`  - { name: e, kind: ecr, secret: ${SECRET} }`))).toEqual([]);
  });
});
