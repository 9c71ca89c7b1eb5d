/**
 * The verification matrix (issue 15, build item 7): key (P-256, RSA-2048) × format (legacy `.sig`,
 * sigstore bundle referrer) × transparency (none, Rekor, RFC 3161 timestamp) × material (bare key,
 * BYO-PKI certificate chain) × shape (single-arch, index: the index and each child), each cell one
 * signet rule with its own repository, signed by one in-process signet (real Redis) into a real
 * docker-registry, with the Rekor stand-in and, for the timestamp column, the TSA stand-in
 * (test/helpers/tsa.ts). Every cell is checked by cosign 2.5, cosign 3.1, containers/image (skopeo
 * 1.18) and @sigstore/verify 3.1.1 (test/helpers/verifiers.ts), each with the trust material
 * `signet policy export --for cosign` / `--for containers` writes and the commands it gives.
 * Negative controls (single-arch cells): the same checks with the wrong key, CA, Rekor log key or
 * TSA swapped into a copy of the exported trust material.
 *
 * The expected outcome of every (cell, verifier, check) comes from one table, EXPECTED below, by
 * principle; each cell's test asserts exactly that row set, so a cell that newly passes or fails
 * is caught. The results (with the tools' versions) go to <tmpdir>/signet-verification-matrix.json
 * and, rendered by test/helpers/matrix-report.ts, to <tmpdir>/signet-verification-matrix.md
 * (docs/formats.md, "Verification matrix", holds one run's rendering).
 *
 * Verifier processes run two at a time (the machine has two cores).
 */
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { COSIGN3_BIN, tempDir } from '../helpers/cosign.js';
import { pushImage, pushIndex } from '../helpers/images.js';
import { renderMatrix, type Check, type CellResult, type CheckResult, type MatrixResults, type Outcome } from '../helpers/matrix-report.js';
import { EKU, issueCertificate, makeIntermediateCa, makeRootCa } from '../helpers/pki.js';
import { startRekor, type RekorStandIn } from '../helpers/rekor.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startSignet, type RunningSignet } from '../helpers/signet.js';
import {
  SKOPEO_ROOTFS,
  toolVersions,
  VERIFIERS,
  writeText,
  type Cell,
  type Format,
  type KeyAlg,
  type Material,
  type Shape,
  type Transparency,
  type VerifierId,
} from '../helpers/verifiers.js';

const IDENTITY = 'signet@example.com';
const RESULTS_JSON = path.join(tmpdir(), 'signet-verification-matrix.json');
const RESULTS_MD = path.join(tmpdir(), 'signet-verification-matrix.md');
const CONCURRENCY = 2;

// ---- the cells ---------------------------------------------------------------------------------

const CELLS: Cell[] = [];
for (const key of ['p256', 'rsa'] as KeyAlg[])
  for (const format of ['legacy', 'bundle'] as Format[])
    for (const transparency of ['none', 'rekor', 'tsa'] as Transparency[])
      for (const material of ['key', 'pki'] as Material[])
        for (const shape of ['single', 'index'] as Shape[])
          CELLS.push({
            id: `${key}-${format}-${transparency}-${material}-${shape}`,
            key,
            format,
            transparency,
            material,
            shape,
            keyName: material === 'pki' ? `${key}c` : key,
            ...(material === 'pki' ? { identity: IDENTITY } : {}),
          });

/** The negative controls a (single-arch) cell gets: always the key; the CA, log or TSA it has. */
function controlsOf(c: Cell): Check[] {
  const out: Check[] = ['wrong-key'];
  if (c.material === 'pki') out.push('wrong-ca');
  if (c.transparency === 'rekor') out.push('wrong-rekor');
  if (c.transparency === 'tsa') out.push('wrong-tsa');
  return c.shape === 'single' ? out : [];
}

// ---- the expected outcomes: one table, first matching row wins ----------------------------------

/**
 * verifier | format | transparency | material | check | expected | why. A field is `*` (any) or
 * alternatives separated by `|`; `wrong-*` is any negative control. "accepted" for a control
 * means the verifier, run as the export says, does not check that material (documented design),
 * so swapping it changes nothing.
 */
type Row = [verifier: string, format: string, transparency: string, material: string, check: string, expected: Outcome, why: string];
const COSIGN = 'cosign-2.5|cosign-3.1';
const EXPECTED: Row[] = [
  ['containers', 'bundle', '*', '*', '*', 'n.a.', 'containers/image reads only the .sig tag'],
  ['sigstore-js', 'legacy', '*', '*', '*', 'n.a.', '@sigstore/verify reads only sigstore bundles'],
  [
    'sigstore-js',
    'bundle',
    'none',
    'pki',
    '*',
    'refused',
    'a certificate needs a verified time (timestampThreshold 1) and the bundle has neither a Rekor entry nor a timestamp',
  ],
  ['containers', 'legacy', '*', 'pki', 'wrong-key', 'accepted', 'the containers export trusts the CA and the subject email (pki), not the key'],
  [
    'containers',
    'legacy',
    'rekor',
    'pki',
    'wrong-rekor',
    'accepted',
    'the pki trust takes no Rekor key (containers/image refuses one next to pki), so the log of a key with a certificate is not checked',
  ],
  ['containers', 'legacy', 'tsa', '*', 'wrong-tsa', 'accepted', 'containers/image ignores RFC 3161 timestamps'],
  [COSIGN, 'legacy', 'none', 'pki', 'wrong-ca', 'accepted', 'without a verified time the README checks a .sig by the key (--key), not the CA'],
  [
    COSIGN,
    'legacy',
    'rekor|tsa',
    'pki',
    'wrong-key',
    'accepted',
    'with a verified time the README checks the certificate against the CA (and the identity), not the key',
  ],
  [COSIGN, 'bundle', '*', 'pki', 'wrong-key', 'accepted', 'a certificate bundle is checked against the CA in trusted_root.json and the identity, not the key'],
  [
    'sigstore-js',
    'bundle',
    '*',
    'pki',
    'wrong-key',
    'accepted',
    'a certificate bundle is checked against the CA in trusted_root.json and the SAN, not the key',
  ],
  ['*', '*', '*', '*', 'verify', 'accepted', 'signed by signet; trust material and commands from signet policy export'],
  ['*', '*', '*', '*', 'wrong-*', 'refused', 'the swapped material is what the verifier checks'],
];

function expected(cell: Cell, verifier: VerifierId, check: Check): { outcome: Outcome; why: string } {
  const fits = (pattern: string, value: string) =>
    pattern === '*' || pattern.split('|').includes(value) || (pattern === 'wrong-*' && value.startsWith('wrong-'));
  const row = EXPECTED.find(
    ([v, f, t, m, c]) => fits(v, verifier) && fits(f, cell.format) && fits(t, cell.transparency) && fits(m, cell.material) && fits(c, check),
  );
  if (!row) throw new Error(`no EXPECTED row for ${cell.id} ${verifier} ${check}`);
  return { outcome: row[5], why: row[6] };
}

// ---- the stack ------------------------------------------------------------------------------------

interface TsaStandIn {
  url: string;
  chainPem: string;
  stop(): Promise<void>;
}

/** The TSA stand-in of test/helpers/tsa.ts (branch h/tsa) when it is there: `startTsa()` -> { url, chainPem, stop }. */
async function startTsaIfPresent(): Promise<{ tsa?: TsaStandIn; problem?: string }> {
  const file = new URL('../helpers/tsa.ts', import.meta.url);
  if (!existsSync(file)) return { problem: 'test/helpers/tsa.ts (the TSA stand-in) is not on this branch' };
  try {
    const mod = (await import(/* @vite-ignore */ pathToFileURL(file.pathname).href)) as Record<string, unknown>;
    const start = (mod['startTsa'] ?? mod['startTSA']) as (() => Promise<Record<string, unknown>>) | undefined;
    if (typeof start !== 'function') return { problem: 'test/helpers/tsa.ts exports no startTsa()' };
    const t = await start();
    const chainPem = (t['chainPem'] ?? t['certificateChainPem'] ?? t['chain']) as string | undefined;
    if (typeof t['url'] !== 'string' || typeof chainPem !== 'string') return { problem: 'startTsa() returned no url/chainPem' };
    return { tsa: { url: t['url'], chainPem, stop: t['stop'] as () => Promise<void> } };
  } catch (err) {
    return { problem: `starting the TSA stand-in: ${(err as Error).message}` };
  }
}

let tmp: { dir: string; remove: () => void };
let rekor: RekorStandIn;
let registry: RunningRegistry;
let signet: RunningSignet | undefined;
let tsa: TsaStandIn | undefined;
let results: MatrixResults;
const file = (...p: string[]) => path.join(tmp.dir, ...p);
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();
const b64 = (s: string) => Buffer.from(s).toString('base64');
const certsOf = (chain: string) => chain.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
const der = (certPem: string) => new X509Certificate(certPem).raw.toString('base64');

/** Run `tasks` with at most `n` at once. */
async function pool<T>(tasks: (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!();
      }
    }),
  );
  return out;
}

function ruleLine(c: Cell, host: string, rekorBlock: string, tsaBlock: string | undefined): string {
  const parts = [`match: "${host}/${c.id}/**"`, `keys: [${c.keyName}]`, `formats: [${c.format}]`];
  if (c.transparency === 'rekor') parts.push(`rekor: ${rekorBlock}`);
  if (c.transparency === 'tsa' && tsaBlock) parts.push(`timestamp: ${tsaBlock}`);
  return `  - { ${parts.join(', ')} }\n`;
}

function configYaml(host: string, cells: Cell[], rekorBlock: string, tsaBlock: string | undefined): string {
  return `
registries:
  - { host: "${host}", insecure: true }
keys:
  - { name: p256, provider: file, path: p256.pem }
  - { name: rsa, provider: file, path: rsa.pem }
  - { name: p256c, provider: file, path: p256c.pem, certificate: p256c.crt, chain: chain.pem }
  - { name: rsac, provider: file, path: rsac.pem, certificate: rsac.crt, chain: chain.pem }
rules:
${cells.map((c) => ruleLine(c, host, rekorBlock, tsaBlock)).join('')}`;
}

async function exportTo(config: string, target: string, out: string): Promise<string[]> {
  const err: string[] = [];
  const code = await main(
    ['--config', config, 'policy', 'export', '--for', target, '--out', out],
    () => {},
    (l) => err.push(l),
  );
  if (code !== 0) throw new Error(`signet policy export --for ${target} failed: ${err.join('\n')}`);
  return err;
}

/** Stranger material for the negative controls. */
interface Strangers {
  keys: Map<string, string>; // real SPKI PEM -> stranger SPKI PEM (same algorithm)
  caChain: string[]; // intermediate, root
  rekorPem: string;
  tsaChainPem: string;
}

/** A copy of the trust dir `from` with one kind of material swapped for a stranger's. */
function tamper(from: string, to: string, check: Exclude<Check, 'verify'>, s: Strangers, realTsaChain: string | undefined): void {
  cpSync(from, to, { recursive: true });
  const cosignDir = path.join(to, 'cosign');
  const trPath = path.join(cosignDir, 'trusted_root.json');
  const tr = JSON.parse(readFileSync(trPath, 'utf8'));
  const policyPath = path.join(to, 'containers', 'policy.json');
  const policy = JSON.parse(readFileSync(policyPath, 'utf8'));
  const requirements = Object.values(policy.transports?.docker ?? {}).flat() as Record<string, any>[];
  const norm = (p: string) => createPublicKey(p).export({ type: 'spki', format: 'pem' }).toString();
  if (check === 'wrong-key') {
    for (const f of readdirSync(cosignDir).filter((n) => n.endsWith('.pub') && !n.startsWith('rekor'))) {
      const swapped = s.keys.get(norm(readFileSync(path.join(cosignDir, f), 'utf8')));
      if (swapped) writeFileSync(path.join(cosignDir, f), swapped);
    }
    for (const r of requirements) {
      if (typeof r['keyData'] === 'string') r['keyData'] = b64(s.keys.get(norm(Buffer.from(r['keyData'], 'base64').toString())) ?? '');
      if (Array.isArray(r['keyDatas'])) r['keyDatas'] = r['keyDatas'].map((k: string) => b64(s.keys.get(norm(Buffer.from(k, 'base64').toString())) ?? ''));
    }
  } else if (check === 'wrong-ca') {
    for (const ca of tr.certificateAuthorities ?? []) ca.certChain = { certificates: s.caChain.map((c) => ({ rawBytes: der(c) })) };
    for (const f of readdirSync(cosignDir).filter((n) => n.endsWith('.chain.pem'))) writeFileSync(path.join(cosignDir, f), s.caChain.join(''));
    for (const r of requirements) {
      if (r['pki']) r['pki'] = { ...r['pki'], caRootsData: b64(s.caChain[1]!), caIntermediatesData: b64(s.caChain[0]!) };
    }
  } else if (check === 'wrong-rekor') {
    const spki = createPublicKey(s.rekorPem).export({ type: 'spki', format: 'der' });
    for (const t of tr.tlogs ?? []) {
      t.publicKey = { ...t.publicKey, rawBytes: spki.toString('base64') };
      t.logId = { keyId: createHash('sha256').update(spki).digest('base64') };
    }
    for (const f of readdirSync(cosignDir).filter((n) => /^rekor.*\.pub$/.test(n))) writeFileSync(path.join(cosignDir, f), s.rekorPem);
    for (const r of requirements) {
      if (typeof r['rekorPublicKeyData'] === 'string') r['rekorPublicKeyData'] = b64(s.rekorPem);
      if (Array.isArray(r['rekorPublicKeyDatas'])) r['rekorPublicKeyDatas'] = r['rekorPublicKeyDatas'].map(() => b64(s.rekorPem));
    }
  } else {
    const certs = certsOf(s.tsaChainPem);
    for (const t of tr.timestampAuthorities ?? []) t.certChain = { certificates: certs.map((c) => ({ rawBytes: der(c) })) };
    // any file naming the real TSA's certificate (a chain file for cosign 2.x, once the export writes one)
    const real = realTsaChain ? certsOf(realTsaChain).map((c) => c.trim()) : [];
    for (const f of readdirSync(cosignDir).filter((n) => n !== 'trusted_root.json' && !n.endsWith('.pub'))) {
      const text = readFileSync(path.join(cosignDir, f), 'utf8');
      if (real.some((c) => text.includes(c))) writeFileSync(path.join(cosignDir, f), s.tsaChainPem);
    }
  }
  writeFileSync(trPath, JSON.stringify(tr, null, 2));
  writeFileSync(policyPath, JSON.stringify(policy, null, 2));
}

beforeAll(async () => {
  const started = Date.now();
  const notes: string[] = [];
  if (!existsSync(path.join(SKOPEO_ROOTFS(), 'usr/bin/skopeo'))) {
    throw new Error(`no containers/image verifier at ${SKOPEO_ROOTFS()}: run "bash .ci/install-test-kit.sh" (as root)`);
  }
  if (process.getuid?.() !== 0) throw new Error('the containers/image verifier runs skopeo in a chroot and needs root');
  if (!existsSync(COSIGN3_BIN())) throw new Error(`no cosign 3.1 at ${COSIGN3_BIN()}: run "bash .ci/install-test-kit.sh"`);

  tmp = tempDir('signet-matrix-');
  // keys: bare P-256 and RSA-2048; the same algorithms with a certificate under one root -> intermediate
  const root = makeRootCa();
  const inter = makeIntermediateCa(root);
  writeFileSync(file('chain.pem'), inter.pem + root.pem);
  const strangers: Strangers = { keys: new Map(), caChain: [], rekorPem: '', tsaChainPem: '' };
  for (const name of ['p256', 'rsa', 'p256c', 'rsac']) {
    const gen = () => (name.startsWith('rsa') ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' }));
    const { privateKey, publicKey } = gen();
    writeFileSync(file(`${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    if (name.endsWith('c'))
      writeFileSync(file(`${name}.crt`), issueCertificate({ cn: `signet signer ${name}`, publicKey, issuer: inter, eku: [EKU.codeSigning], email: IDENTITY }));
    strangers.keys.set(pem(publicKey), pem(gen().publicKey));
  }
  const strangerRoot = makeRootCa('some other root');
  strangers.caChain = [makeIntermediateCa(strangerRoot).pem, strangerRoot.pem];
  strangers.rekorPem = pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);

  rekor = await startRekor();
  registry = await startRegistry();
  const H = registry.host;
  const rekorBlock = `{ url: "${rekor.url}", publicKey: ${JSON.stringify(rekor.publicKeyPem)} }`;
  const t = await startTsaIfPresent();
  tsa = t.tsa;
  let tsaProblem = t.problem;
  if (tsa) {
    const other = await startTsaIfPresent();
    strangers.tsaChainPem = other.tsa?.chainPem ?? '';
    await other.tsa?.stop();
  }
  if (!strangers.tsaChainPem) {
    const r = makeRootCa('some other TSA root');
    strangers.tsaChainPem = makeIntermediateCa(r, 'some other TSA').pem + r.pem;
  }
  const tsaBlock = tsa ? `{ url: "${tsa.url}", certificateChain: ${JSON.stringify(tsa.chainPem)} }` : undefined;

  // one signet, one rule per cell; a config signet refuses (the timestamp option not wired yet)
  // leaves the timestamp cells out, recorded as not signed
  let signedCells = tsa ? CELLS : CELLS.filter((c) => c.transparency !== 'tsa');
  let yaml = configYaml(H, signedCells, rekorBlock, tsaBlock);
  try {
    signet = await startSignet(yaml, { baseDir: tmp.dir });
  } catch (err) {
    if (!tsa) throw err;
    tsaProblem = `signet refused the config with \`timestamp:\` rules: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`;
    signedCells = CELLS.filter((c) => c.transparency !== 'tsa');
    yaml = configYaml(H, signedCells, rekorBlock, tsaBlock);
    signet = await startSignet(yaml, { baseDir: tmp.dir });
  }
  if (tsaProblem) notes.push(`timestamp cells not signed: ${tsaProblem}`);
  signedCells.forEach((c, i) => (c.ruleIndex = i));
  writeFileSync(file('signet.yaml'), yaml);
  // containers/image reads only .sig, and `--for containers` refuses a config with a bundle-only
  // rule: its export is made from the legacy cells' rules alone (same keys, same scopes)
  writeFileSync(
    file('signet-legacy.yaml'),
    configYaml(
      H,
      signedCells.filter((c) => c.format === 'legacy'),
      rekorBlock,
      tsaBlock,
    ),
  );
  const trust = file('trust');
  notes.push(...(await exportTo(file('signet.yaml'), 'cosign', path.join(trust, 'cosign'))).map((n) => `export --for cosign: ${n}`));
  notes.push(...(await exportTo(file('signet-legacy.yaml'), 'containers', path.join(trust, 'containers'))).map((n) => `export --for containers: ${n}`));
  const trusts: Record<Check, string> = { verify: trust, 'wrong-key': '', 'wrong-ca': '', 'wrong-rekor': '', 'wrong-tsa': '' };
  for (const c of ['wrong-key', 'wrong-ca', 'wrong-rekor', 'wrong-tsa'] as const) {
    trusts[c] = file(`trust-${c}`);
    tamper(trust, trusts[c], c, strangers, tsa?.chainPem);
  }

  // push and sign every cell (two at a time)
  const cellResults = new Map<string, CellResult>(CELLS.map((c) => [c.id, { cell: c, signed: false, results: {} }]));
  const refs = new Map<string, string[]>();
  await pool(
    signedCells.map((c) => async () => {
      const r = cellResults.get(c.id)!;
      const repository = `${c.id}/app`;
      try {
        if (c.shape === 'single') {
          const img = await pushImage(registry, repository, 'v1');
          refs.set(c.id, [`${H}/${repository}@${img.digest}`]);
        } else {
          const idx = await pushIndex(registry, repository, 'v1', ['linux/amd64', 'linux/arm64']);
          refs.set(
            c.id,
            [idx.digest, ...idx.children].map((d) => `${H}/${repository}@${d}`),
          );
        }
        const report = await signet!.runtime.pipeline.sign({ host: H, repository, tag: 'v1' });
        if (report.status !== 'signed') throw new Error(`not signed: ${JSON.stringify(report).slice(0, 300)}`);
        r.signed = true;
      } catch (err) {
        r.signError = (err as Error).message.split('\n')[0]!.slice(0, 400);
      }
    }),
    CONCURRENCY,
  );
  for (const c of CELLS) {
    const r = cellResults.get(c.id)!;
    if (!signedCells.includes(c)) r.signError = tsaProblem ?? 'no rule';
  }

  // every (cell, verifier, check) the cell has: the verification on every reference, the controls on the single one
  const tasks: (() => Promise<void>)[] = [];
  for (const c of CELLS) {
    const r = cellResults.get(c.id)!;
    for (const v of VERIFIERS) {
      const slot: Partial<Record<Check, CheckResult>> = (r.results[v.id] = {});
      for (const check of ['verify', ...controlsOf(c)] as Check[]) {
        const exp = expected(c, v.id, check);
        const result: CheckResult = { outcome: 'n.a.', expected: exp.outcome, why: exp.why, refs: [] };
        if (!v.reads(c)) {
          if (check === 'verify') slot[check] = result;
          continue;
        }
        slot[check] = result;
        if (!r.signed) {
          result.outcome = 'refused';
          result.refs.push({ ref: '-', accepted: false, detail: `not signed: ${r.signError ?? '?'}` });
          continue;
        }
        const cellRefs = check === 'verify' ? refs.get(c.id)! : refs.get(c.id)!.slice(0, 1);
        result.refs = cellRefs.map((ref) => ({ ref, accepted: false, detail: 'not run' }));
        cellRefs.forEach((ref, i) => {
          tasks.push(async () => {
            let verdict;
            try {
              verdict = await v.run(c, ref, trusts[check]);
            } catch (err) {
              verdict = { accepted: false, detail: `verifier error: ${(err as Error).message}` };
            }
            result.refs[i] = { ref, ...verdict };
          });
        });
      }
    }
  }
  await pool(tasks, CONCURRENCY);
  for (const r of cellResults.values()) {
    for (const slot of Object.values(r.results)) {
      for (const res of Object.values(slot ?? {})) {
        if (res && res.refs.length && res.refs[0]!.ref !== '-') res.outcome = res.refs.every((x) => x.accepted) ? 'accepted' : 'refused';
      }
    }
  }
  results = { generatedAt: new Date().toISOString(), runtimeMs: Date.now() - started, tools: await toolVersions(), notes, cells: [...cellResults.values()] };
  writeText(RESULTS_JSON, `${JSON.stringify(results, null, 2)}\n`);
  writeText(RESULTS_MD, renderMatrix(results));
  console.log(
    `verification matrix: ${tasks.length} verifier runs in ${Math.round((Date.now() - started) / 1000)} s; results ${RESULTS_JSON}, table ${RESULTS_MD}`,
  );
}, 240_000);

afterAll(async () => {
  await signet?.stop();
  await registry?.stop();
  await rekor?.stop();
  await tsa?.stop();
  tmp?.remove();
});

describe('verification matrix', () => {
  it('covers 48 cells, each with a rule of its own, and has an EXPECTED row for every (cell, verifier, check)', () => {
    expect(CELLS).toHaveLength(48);
    expect(new Set(CELLS.map((c) => c.id)).size).toBe(48);
    for (const c of CELLS)
      for (const v of VERIFIERS) for (const check of ['verify', ...controlsOf(c)] as Check[]) expect(() => expected(c, v.id, check)).not.toThrow();
  });

  it.each(CELLS.map((c) => [c.id, c] as const))('%s: every verifier and negative control as the EXPECTED table says', (_id, cell) => {
    const r = results.cells.find((x) => x.cell.id === cell.id)!;
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    const why: string[] = [];
    for (const [v, slot] of Object.entries(r.results)) {
      for (const [check, res] of Object.entries(slot ?? {})) {
        if (!res) continue;
        got[`${v} ${check}`] = res.outcome;
        want[`${v} ${check}`] = res.expected;
        if (res.outcome !== res.expected)
          why.push(`${v} ${check}: ${res.outcome} (expected ${res.expected}: ${res.why})\n    ${res.refs.map((x) => `${x.ref}: ${x.detail}`).join('\n    ')}`);
      }
    }
    expect(got, `${cell.id}${r.signed ? '' : ` (not signed: ${r.signError})`}\n  ${why.join('\n  ')}`).toEqual(want);
  });

  it("writes the results (with the tools' versions) as JSON and a markdown table", () => {
    const back = JSON.parse(readFileSync(RESULTS_JSON, 'utf8')) as MatrixResults;
    expect(back.cells).toHaveLength(48);
    for (const id of ['cosign-2.5', 'cosign-3.1', 'containers', 'sigstore-js'] as const) expect(back.tools[id]).toBeTruthy();
    const md = readFileSync(RESULTS_MD, 'utf8');
    expect(md.split('\n').filter((l) => /^\| (P-256|RSA-2048) \|/.test(l))).toHaveLength(48);
  });
});
