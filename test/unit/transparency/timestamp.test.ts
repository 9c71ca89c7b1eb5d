/**
 * The RFC 3161 client and verifier against the TSA stand-in (@sigstore/mock's TSA behind a DER
 * endpoint): the request on the wire, a granted answer verified, each way an answer can be wrong,
 * which failures are retried, a hung TSA; and the TSA rule config / chain loader.
 */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SignetError } from '../../../src/errors.js';
import { loadTimestampChain, timestampRuleSchema } from '../../../src/transparency/timestamp-config.js';
import {
  bundleRfc3161Timestamp,
  encodeTimestampRequest,
  legacyRfc3161Annotation,
  OID_EKU_TIMESTAMPING,
  parseTimestampChain,
  TimestampClient,
  verifyTimestamp,
} from '../../../src/transparency/timestamp.js';
import { EKU, issueCertificate, makeRootCa } from '../../helpers/pki.js';
import { startTsa, type TsaStandIn } from '../../helpers/tsa.js';

let tsa: TsaStandIn;
let other: TsaStandIn;
const clients: TimestampClient[] = [];
const client = (opts: Partial<ConstructorParameters<typeof TimestampClient>[0]> = {}) => {
  const c = new TimestampClient({ url: tsa.url, chain: tsa.chainPem, retryDelaysMs: [10, 10], timeoutMs: 5000, ...opts });
  clients.push(c);
  return c;
};
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

async function rejection(p: Promise<unknown>): Promise<SignetError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SignetError);
  return err as SignetError;
}
function thrown(fn: () => unknown): SignetError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SignetError);
    return err as SignetError;
  }
  throw new Error('did not throw');
}

beforeAll(async () => {
  [tsa, other] = await Promise.all([startTsa(), startTsa()]);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([tsa.stop(), other.stop()]);
});
beforeEach(() => {
  tsa.fail(0, 0);
  tsa.tamper('none');
  tsa.hang(false);
  tsa.requests.length = 0;
});

describe('TimeStampReq encoding', () => {
  it('is the DER RFC 3161 request: version 1, sha256 imprint (NULL params), nonce, certReq TRUE', () => {
    const der = encodeTimestampRequest({ sha256: Buffer.alloc(32, 0xab), nonce: 0x80n, certReq: true });
    expect(der.toString('hex')).toBe('303d' + '020101' + '3031' + '300d0609608648016503040201' + '0500' + '0420' + 'ab'.repeat(32) + '02020080' + '0101ff');
    // certReq FALSE is the DEFAULT: DER leaves it out
    expect(
      encodeTimestampRequest({ sha256: Buffer.alloc(32), nonce: 1n, certReq: false })
        .subarray(-3)
        .toString('hex'),
    ).toBe('020101');
  });

  it('is read by openssl ts as the same request', () => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-tsq-'));
    try {
      const hash = sha256('payload');
      writeFileSync(join(dir, 'q.tsq'), encodeTimestampRequest({ sha256: hash, nonce: 0x1234567890abcdefn }));
      const text = execFileSync('openssl', ['ts', '-query', '-in', join(dir, 'q.tsq'), '-text'], { encoding: 'utf8' });
      expect(text).toMatch(/Version: 1/);
      expect(text).toMatch(/Hash Algorithm: sha256/);
      const dumped = [...text.matchAll(/^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){15}[0-9a-f]{2})/gm)].map((m) => m[1]!.replace(/[ -]/g, '')).join('');
      expect(dumped).toBe(hash.toString('hex'));
      expect(text).toMatch(/Nonce: 0x1234567890ABCDEF/i);
      expect(text).toMatch(/Certificate required: yes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the client POSTs application/timestamp-query with the sha256 of the data and a fresh 63-bit nonce', async () => {
    const c = client();
    await c.timestamp(Buffer.from('one'));
    await c.timestamp(Buffer.from('one'));
    expect(tsa.requests).toHaveLength(2);
    const [a, b] = tsa.requests;
    expect(a!.contentType).toBe('application/timestamp-query');
    expect(a!.version).toBe(1n);
    expect(a!.hashAlgorithm).toBe('2.16.840.1.101.3.4.2.1');
    expect(a!.hash).toEqual(sha256('one'));
    expect(a!.certReq).toBe(true);
    expect(a!.nonce).toBeGreaterThan(0n);
    expect(a!.nonce).toBeLessThan(1n << 63n);
    expect(b!.nonce).not.toBe(a!.nonce);
  });
});

describe('TimestampClient', () => {
  it('returns the granted TimeStampResp as sent, verified, with its genTime', async () => {
    const data = Buffer.from('signature bytes');
    const before = Date.now();
    const ts = await client().timestamp(data);
    expect(tsa.requests.map((r) => r.status)).toEqual([200]);
    // a TimeStampResp: SEQUENCE { PKIStatusInfo { 0 }, token }
    expect(ts.response.subarray(0, 1).toString('hex')).toBe('30');
    expect(ts.response.includes(Buffer.from('3003020100', 'hex'))).toBe(true);
    expect(ts.genTime.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
    expect(verifyTimestamp(ts.response, data, tsa.chainPem).genTime).toEqual(ts.genTime);
    // the formats: base64 of those same bytes
    expect(bundleRfc3161Timestamp(ts)).toEqual({ signedTimestamp: ts.response.toString('base64') });
    expect(JSON.parse(legacyRfc3161Annotation(ts))).toEqual({ SignedRFC3161Timestamp: ts.response.toString('base64') });
  });

  it('verifyTimestamp refuses other data, another TSA chain, and garbage; takes a bare token too', async () => {
    const data = Buffer.from('sig');
    const ts = await client().timestamp(data);
    expect(thrown(() => verifyTimestamp(ts.response, Buffer.from('other'), tsa.chainPem)).message).toMatch(/message imprint does not match/);
    const wrong = thrown(() => verifyTimestamp(ts.response, data, other.chainPem));
    expect(wrong.code).toBe('TIMESTAMP_REJECTED');
    expect(wrong.message).toMatch(/certificate embedded in the token is not the configured TSA certificate/);
    expect(thrown(() => verifyTimestamp(Buffer.from('not der'), data, tsa.chainPem)).code).toBe('TIMESTAMP_REJECTED');
    expect(thrown(() => verifyTimestamp(ts.response.subarray(0, 40), data, tsa.chainPem)).code).toBe('TIMESTAMP_REJECTED');
    // the token alone (ContentInfo) is the TimeStampResp minus its 5-byte status and outer header
    const token = ts.response.subarray(ts.response.indexOf(Buffer.from('3003020100', 'hex')) + 5);
    expect(verifyTimestamp(token, data, tsa.chainPem).genTime).toEqual(ts.genTime);
    expect(verifyTimestamp(ts.response, data, parseTimestampChain(tsa.chainPem)).genTime).toEqual(ts.genTime);
    expect(verifyTimestamp(ts.response, data, parseTimestampChain(tsa.chainPem).certificates).genTime).toEqual(ts.genTime);
  });

  it("without embedded certificates another TSA's token fails the ESS check; a changed signature fails the signature check", async () => {
    const data = Buffer.from('sig');
    const res = await fetch(other.url, {
      method: 'POST',
      headers: { 'content-type': 'application/timestamp-query' },
      body: encodeTimestampRequest({ sha256: sha256(data), nonce: 7n, certReq: false }),
    });
    const bare = Buffer.from(await res.arrayBuffer());
    expect(verifyTimestamp(bare, data, other.chainPem, { nonce: 7n }).genTime).toBeInstanceOf(Date);
    expect(thrown(() => verifyTimestamp(bare, data, tsa.chainPem)).message).toMatch(/ESS signing-certificate attribute names a certificate other than/);
    // the ECDSA signature is the last element of the response: change its last byte
    const ts = await client().timestamp(data);
    const flipped = Buffer.from(ts.response);
    flipped[flipped.length - 1] ^= 0x01;
    expect(thrown(() => verifyTimestamp(flipped, data, tsa.chainPem)).message).toMatch(/signature verification failed/);
  });

  it('reads a DER-minimal genTime fraction (".5Z"), which @sigstore/core 3.2 alone cannot', async () => {
    const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 1500);
    const half = await startTsa({ genTime: () => at });
    try {
      const ts = await client({ url: half.url, chain: half.chainPem }).timestamp(Buffer.from('x'));
      expect(ts.response.includes(Buffer.from(`${at.toISOString().replace(/[-:T]/g, '').slice(0, 14)}.5Z`))).toBe(true);
      expect(ts.genTime).toEqual(at);
    } finally {
      await half.stop();
    }
  });

  it('refuses a token over another imprint', async () => {
    tsa.tamper('imprint');
    const err = await rejection(client().timestamp(Buffer.from('x')));
    expect(err.code).toBe('TIMESTAMP_REJECTED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/message imprint does not match/);
    expect(tsa.requests).toHaveLength(1);
  });

  it('refuses a token with another nonce', async () => {
    tsa.tamper('nonce');
    const err = await rejection(client().timestamp(Buffer.from('x')));
    expect(err.code).toBe('TIMESTAMP_REJECTED');
    expect(err.message).toMatch(/nonce does not match/);
  });

  it('refuses a token from a TSA whose chain is not the configured one (same names, other key)', async () => {
    const err = await rejection(client({ chain: other.chainPem }).timestamp(Buffer.from('x')));
    expect(err.code).toBe('TIMESTAMP_REJECTED');
    expect(err.message).toContain(tsa.url);
  });

  it('a PKIStatus rejection is TIMESTAMP_REJECTED with the TSA words, not retried; waiting is retryable', async () => {
    tsa.tamper('rejection');
    const err = await rejection(client().timestamp(Buffer.from('x')));
    expect(err.code).toBe('TIMESTAMP_REJECTED');
    expect(err.message).toMatch(/rejection: badRequest: request refused by the stand-in/);
    expect(tsa.requests).toHaveLength(1);
    tsa.tamper('waiting');
    const w = await rejection(client({ attempts: 1 }).timestamp(Buffer.from('x')));
    expect(w.code).toBe('TIMESTAMP_UNAVAILABLE');
    expect(w.retryable).toBe(true);
  });

  it('retries a 503 (Retry-After honoured) and then succeeds', async () => {
    tsa.fail(503, 1, { 'retry-after': '0' });
    const ts = await client().timestamp(Buffer.from('x'));
    expect(ts.genTime).toBeInstanceOf(Date);
    expect(tsa.requests.map((r) => r.status)).toEqual([503, 200]);
  });

  it('gives up after the attempts with a retryable TIMESTAMP_UNAVAILABLE; a long Retry-After goes to the queue at once', async () => {
    tsa.fail(503, 10);
    const err = await rejection(client().timestamp(Buffer.from('x')));
    expect(err.code).toBe('TIMESTAMP_UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(err.status).toBe(503);
    expect(err.message).toContain('stand-in failure 503');
    expect(tsa.requests).toHaveLength(3);
    tsa.requests.length = 0;
    tsa.fail(429, 10, { 'retry-after': '60' });
    const t = await rejection(client().timestamp(Buffer.from('x')));
    expect(t.code).toBe('TIMESTAMP_UNAVAILABLE');
    expect(t.retryAfterSeconds).toBe(60);
    expect(tsa.requests).toHaveLength(1);
  });

  it('a 4xx or a reply that is not application/timestamp-reply is TIMESTAMP_REJECTED, not retried', async () => {
    tsa.fail(400, 1);
    const e = await rejection(client().timestamp(Buffer.from('x')));
    expect(e.code).toBe('TIMESTAMP_REJECTED');
    expect(e.status).toBe(400);
    expect(tsa.requests).toHaveLength(1);
    tsa.fail(200, 1);
    const t = await rejection(client().timestamp(Buffer.from('x')));
    expect(t.code).toBe('TIMESTAMP_REJECTED');
    expect(t.message).toMatch(/"text\/plain", not application\/timestamp-reply/);
  });

  it('a hung TSA hits the deadline: TIMESTAMP_UNAVAILABLE "timed out" after each attempt', async () => {
    tsa.hang(true);
    const err = await rejection(client({ timeoutMs: 300, attempts: 2 }).timestamp(Buffer.from('x')));
    expect(err.code).toBe('TIMESTAMP_UNAVAILABLE');
    expect(err.message).toMatch(/timed out/);
    expect(tsa.requests).toHaveLength(2);
  });

  it('an oversized answer stops at the cap (TIMESTAMP_REJECTED, not retried); a trickling one hits the deadline', async () => {
    let served = 0;
    const big = createServer((req, res) => {
      served++;
      req.resume();
      res.writeHead(200, { 'content-type': 'application/timestamp-reply' });
      res.end(Buffer.alloc(1024 * 1024));
    });
    let trickled = 0;
    const slow = createServer((req, res) => {
      trickled++;
      req.resume();
      res.writeHead(200, { 'content-type': 'application/timestamp-reply' });
      const t = setInterval(() => res.write(Buffer.from([0x30])), 50);
      res.on('close', () => clearInterval(t));
    });
    await Promise.all([big, slow].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    const url = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/tsr`;
    try {
      const e = await rejection(client({ url: url(big) }).timestamp(Buffer.from('x')));
      expect(e.code).toBe('TIMESTAMP_REJECTED');
      expect(e.message).toMatch(/more than 262144 bytes/);
      expect(served).toBe(1);
      const t = await rejection(client({ url: url(slow), timeoutMs: 400, attempts: 2 }).timestamp(Buffer.from('x')));
      expect(t.code).toBe('TIMESTAMP_UNAVAILABLE');
      expect(t.message).toMatch(/timed out/);
      expect(trickled).toBe(2);
    } finally {
      for (const s of [big, slow]) s.closeAllConnections();
      await Promise.all([big, slow].map((s) => new Promise((r) => s.close(r))));
    }
  });

  it('an error body is redacted in the message', async () => {
    const leaky = createServer((req, res) => {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('upstream said: Authorization: Bearer abcdefghijklmnop123 failed');
    });
    await new Promise<void>((r) => leaky.listen(0, '127.0.0.1', r));
    try {
      const e = await rejection(client({ url: `http://127.0.0.1:${(leaky.address() as AddressInfo).port}/`, attempts: 1 }).timestamp(Buffer.from('x')));
      expect(e.code).toBe('TIMESTAMP_UNAVAILABLE');
      expect(e.message).toContain('Bearer [redacted]');
      expect(e.message).not.toContain('abcdefghijklmnop123');
    } finally {
      leaky.closeAllConnections();
      await new Promise((r) => leaky.close(r));
    }
  });

  it("refuses a token whose genTime falls outside the TSA certificates' validity", async () => {
    const later = await startTsa({ genTime: () => new Date(Date.now() + 400 * 86400_000 + 1) });
    try {
      const e = await rejection(client({ url: later.url, chain: later.chainPem }).timestamp(Buffer.from('x')));
      expect(e.code).toBe('TIMESTAMP_REJECTED');
      expect(e.message).toMatch(/certificate 1 of the TSA chain .* is not valid at genTime/);
    } finally {
      await later.stop();
    }
  });

  it('a closed port is TIMESTAMP_UNAVAILABLE; the url in messages carries no query', async () => {
    const err = await rejection(client({ url: 'http://127.0.0.1:9/tsr?token=secret', attempts: 1 }).timestamp(Buffer.from('x')));
    expect(err.code).toBe('TIMESTAMP_UNAVAILABLE');
    expect(err.message).toContain('http://127.0.0.1:9/tsr');
    expect(err.message).not.toContain('secret');
  });

  it('refuses credentials in the url and a chain that is not a TSA chain', () => {
    expect(() => client({ url: 'https://u:p@tsa.example/' })).toThrow(/credentials/);
    expect(() => client({ chain: tsa.rootPem })).toThrow(/single certificate/);
  });
});

describe('another TSA implementation: openssl ts -reply (RSA keys)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-openssl-tsa-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  writeFileSync(
    join(dir, 'ext.cnf'),
    '[tsa]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = critical, timeStamping\n',
  );
  const tsaConf = (essAlg: string) =>
    [
      '[tsa]',
      'default_tsa = t',
      '[t]',
      'serial = ./serial',
      'signer_cert = ./leaf.pem',
      'certs = ./leaf.pem',
      'signer_key = ./leaf.key',
      'signer_digest = sha256',
      'default_policy = 1.2.3.4.1',
      'other_policies = 1.2.3.4.2',
      'digests = sha256',
      'accuracy = secs:1',
      `ess_cert_id_alg = ${essAlg}`,
      '',
    ].join('\n');
  writeFileSync(join(dir, 'serial'), '01\n');
  ossl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'root.key',
    '-subj',
    '/CN=openssl tsa root',
    '-days',
    '2',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
    '-out',
    'root.pem',
  );
  ossl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-subj', '/CN=openssl tsa', '-out', 'leaf.csr');
  ossl(
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'root.pem',
    '-CAkey',
    'root.key',
    '-set_serial',
    '7',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
    '-extensions',
    'tsa',
    '-out',
    'leaf.pem',
  );
  const chain = readFileSync(join(dir, 'leaf.pem'), 'utf8') + readFileSync(join(dir, 'root.pem'), 'utf8');

  for (const essAlg of ['sha1', 'sha256']) {
    it(`answers signet's request with a token signet verifies (ESS signing-certificate ${essAlg === 'sha1' ? 'v1, SHA-1' : 'v2, SHA-256'})`, () => {
      writeFileSync(join(dir, `${essAlg}.cnf`), tsaConf(essAlg));
      const data = Buffer.from(`data ${essAlg}`);
      writeFileSync(join(dir, 'q.tsq'), encodeTimestampRequest({ sha256: sha256(data), nonce: 0x7fffffffffffffffn }));
      ossl('ts', '-reply', '-config', `${essAlg}.cnf`, '-queryfile', 'q.tsq', '-out', 'r.tsr');
      const resp = readFileSync(join(dir, 'r.tsr'));
      expect(verifyTimestamp(resp, data, chain, { nonce: 0x7fffffffffffffffn, requireSha256: true }).genTime).toBeInstanceOf(Date);
      expect(thrown(() => verifyTimestamp(resp, data, chain, { nonce: 1n })).message).toMatch(/nonce does not match/);
      expect(thrown(() => verifyTimestamp(resp, data, tsa.chainPem)).code).toBe('TIMESTAMP_REJECTED');
    });
  }
});

describe('TSA chain and rule config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-tsa-chain-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** A root, an intermediate and TSA leaves made by openssl (pki.ts writes EKU non-critical). */
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  writeFileSync(
    join(dir, 'ext.cnf'),
    [
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign',
      '[tsa]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = critical, timeStamping',
      '[tsa_noncritical]',
      'extendedKeyUsage = timeStamping',
      '[tsa_two]',
      'extendedKeyUsage = critical, timeStamping, codeSigning',
      '[tsa_ca]',
      'basicConstraints = critical, CA:TRUE',
      'extendedKeyUsage = critical, timeStamping',
      '',
    ].join('\n'),
  );
  ossl(
    'req',
    '-x509',
    ...newKey,
    '-keyout',
    'root.key',
    '-subj',
    '/CN=tsa test root',
    '-days',
    '2',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
    '-out',
    'root.pem',
  );
  const issue = (name: string, section: string, ca = 'root') => {
    ossl('req', '-new', ...newKey, '-keyout', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
    ossl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-set_serial',
      String(Math.floor(Math.random() * 1e9)),
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
      '-extensions',
      section,
      '-out',
      `${name}.pem`,
    );
    return readFileSync(join(dir, `${name}.pem`), 'utf8');
  };
  const rootPem = readFileSync(join(dir, 'root.pem'), 'utf8');
  const interPem = issue('inter', 'ca');
  const leafPem = issue('leaf', 'tsa', 'inter');

  it('loads PEM text or a file relative to the config directory, leaf first', () => {
    writeFileSync(join(dir, 'chain.pem'), leafPem + interPem + rootPem);
    const fromFile = loadTimestampChain('chain.pem', dir);
    expect(fromFile.certificates).toHaveLength(3);
    expect(loadTimestampChain(leafPem + interPem + rootPem, '/nonexistent').certificates).toEqual(fromFile.certificates);
    expect(loadTimestampChain(tsa.chainPem, dir).pem).toBe(tsa.chainPem);
  });

  it('says what is wrong with a chain, as CONFIG_INVALID', () => {
    const bad = (value: string, now?: Date) => thrown(() => loadTimestampChain(value, dir, now ? { now } : {}));
    const chain = (leaf: string) => leaf + interPem + rootPem;
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const root = makeRootCa('pki root');
    expect(bad('missing.pem').message).toMatch(/missing\.pem: cannot read the file \(ENOENT\)/);
    expect(bad('-----BEGIN nothing').message).toMatch(/no PEM certificate/);
    expect(bad(issueCertificate({ cn: 'x', publicKey: k.publicKey, issuer: root, eku: [EKU.codeSigning] }) + root.pem).message).toMatch(
      /not a timestamping certificate/,
    );
    expect(bad(issueCertificate({ cn: 'x', publicKey: k.publicKey, issuer: root }) + root.pem).message).toMatch(/not a timestamping certificate/);
    expect(bad(issueCertificate({ cn: 'x', publicKey: k.publicKey, issuer: root, eku: [OID_EKU_TIMESTAMPING] }) + root.pem).message).toMatch(
      /must mark its extended key usage critical/,
    );
    expect(bad(chain(issue('noncrit', 'tsa_noncritical', 'inter'))).message).toMatch(/critical/);
    expect(bad(chain(issue('two', 'tsa_two', 'inter'))).message).toMatch(/only extended key usage/);
    expect(bad(chain(issue('isca', 'tsa_ca', 'inter'))).message).toMatch(/is a CA/);
    expect(bad(leafPem + rootPem + interPem).message).toMatch(/certificate 1 .* is not issued by certificate 2/);
    expect(bad(leafPem + interPem).message).toMatch(/not a self-signed root/);
    expect(bad(leafPem).message).toMatch(/single certificate/);
    expect(bad(tsa.leafPem + other.rootPem).message).toMatch(/not issued by/);
    expect(bad(chain(leafPem), new Date(Date.now() + 3 * 86400_000)).message).toMatch(/expired/);
    for (const e of [bad('missing.pem'), bad(tsa.rootPem)]) expect(e.code).toBe('CONFIG_INVALID');
  });

  it('timestampRuleSchema: defaults, and URLs it refuses', () => {
    expect(timestampRuleSchema.parse({ url: 'https://tsa.example/tsr', certificateChain: 'chain.pem' })).toEqual({
      url: 'https://tsa.example/tsr',
      certificateChain: 'chain.pem',
      timeoutMs: 10_000,
      required: true,
    });
    for (const url of ['ftp://tsa.example/', 'https://u:p@tsa.example/', 'https://tsa.example/?k=v', 'not a url']) {
      expect(timestampRuleSchema.safeParse({ url, certificateChain: 'c.pem' }).success).toBe(false);
    }
    expect(timestampRuleSchema.safeParse({ url: 'https://tsa.example/' }).success).toBe(false);
    expect(timestampRuleSchema.safeParse({ url: 'https://tsa.example/', certificateChain: 'c', extra: 1 }).success).toBe(false);
  });
});
