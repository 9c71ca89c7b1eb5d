/**
 * The Rekor client against the Rekor stand-in (and a few hand-made misbehaving servers): entries,
 * 409 -> the existing entry, SET checks, and which failures are retryable.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_SECONDS } from '../../../src/edge/retry-after.js';
import { checkHashedRekordBody, cosignBundleAnnotation, hashedRekordNames, proposedHashedRekord } from '../../../src/transparency/entries.js';
import { logIdOf, RekorClient, verifySET } from '../../../src/transparency/rekor.js';
import { EKU, issueCertificate, makeRootCa } from '../../helpers/pki.js';
import { startRekor, type RekorStandIn } from '../../helpers/rekor.js';

let rekor: RekorStandIn;
const clients: RekorClient[] = [];
const client = (opts: Partial<ConstructorParameters<typeof RekorClient>[0]> = {}) => {
  const c = new RekorClient({ url: rekor.url, retryDelaysMs: [10, 10], timeoutMs: 2000, ...opts });
  clients.push(c);
  return c;
};

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
function rsaEntry(text: string) {
  const payload = Buffer.from(text);
  const hex = createHash('sha256').update(payload).digest('hex');
  const signature = sign('sha256', payload, rsa.privateKey);
  return { hex, signature, proposed: proposedHashedRekord(hex, signature, rsaPem) };
}

async function server(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const s: Server = createServer(handler);
  s.on('connection', () => n++);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    connections: () => n,
    close: () => new Promise((r) => (s.closeAllConnections(), s.close(() => r()))),
  };
}

beforeAll(async () => {
  rekor = await startRekor();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await rekor.stop();
});
beforeEach(() => {
  rekor.fail(0, 0);
  rekor.delay(0);
});

describe('RekorClient', () => {
  it('creates a hashedrekord entry whose SET verifies with the log key; logID is sha256 of the DER key', async () => {
    const { hex, signature, proposed } = rsaEntry('one');
    const e = await client().createEntry(proposed);
    expect(e.existing).toBe(false);
    expect(e.logID).toBe(rekor.logId);
    expect(e.logID).toBe(logIdOf(createPublicKey(rekor.publicKeyPem)));
    expect(e.logIndex).toBeGreaterThan(0);
    expect(verifySET(e, createPublicKey(rekor.publicKeyPem))).toBe(true);
    expect(verifySET({ ...e, integratedTime: e.integratedTime + 1 }, createPublicKey(rekor.publicKeyPem))).toBe(false);
    expect(e.inclusionProof).toMatchObject({ treeSize: expect.any(Number), checkpoint: expect.stringContaining('\u2014 ') });
    expect(() => checkHashedRekordBody(e, hex, signature, rsaPem)).not.toThrow();
    expect(() => checkHashedRekordBody(e, hex, Buffer.from('other'), rsaPem)).toThrow(/signature/);
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(() => checkHashedRekordBody(e, hex, signature, otherKey)).toThrow(/public key/);
  });

  it('a hashedrekord entry naming a certificate: Rekor stores the certificate, the checks compare with it and refuse the bare key', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const cert = issueCertificate({ cn: 'signer', publicKey: ec.publicKey, issuer: makeRootCa(), eku: [EKU.codeSigning] });
    const keyPem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const payload = Buffer.from('with a certificate');
    const hex = createHash('sha256').update(payload).digest('hex');
    const signature = sign('sha256', payload, ec.privateKey);
    const e = await client().createEntry(proposedHashedRekord(hex, signature, cert));
    const stored = JSON.parse(Buffer.from(e.body, 'base64').toString()).spec.signature.publicKey.content;
    expect(Buffer.from(stored, 'base64').toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(() => checkHashedRekordBody(e, hex, signature, cert)).not.toThrow();
    expect(() => checkHashedRekordBody(e, hex, signature, keyPem)).toThrow(/public key or certificate/);
    const annotation = cosignBundleAnnotation(e);
    expect(hashedRekordNames(annotation, cert)).toBe(true);
    expect(hashedRekordNames(annotation, keyPem)).toBe(false);
    expect(hashedRekordNames('not json', cert)).toBe(false);
    expect(hashedRekordNames(undefined, cert)).toBe(false);
  });

  it('a second identical entry (deterministic RSA) is a 409: the existing entry is fetched', async () => {
    const { proposed } = rsaEntry('twice');
    const c = client();
    const first = await c.createEntry(proposed);
    const again = await c.createEntry(proposed);
    expect(again).toMatchObject({ existing: true, uuid: first.uuid, logIndex: first.logIndex, body: first.body });
    expect(rekor.requests.slice(-2).map((r) => `${r.method} ${r.status}`)).toEqual(['POST 409', 'GET 200']);
  });

  it('checks each SET and logID against a configured Rekor public key', async () => {
    const ok = client({ publicKeyPem: rekor.publicKeyPem });
    await expect(ok.createEntry(rsaEntry('pinned').proposed)).resolves.toMatchObject({ logID: rekor.logId });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await expect(client({ publicKeyPem: other }).createEntry(rsaEntry('pinned-2').proposed)).rejects.toMatchObject({
      code: 'REKOR_REJECTED',
      retryable: false,
    });
    const rsaKey = rsaPem;
    expect(() => client({ publicKeyPem: rsaKey })).toThrow(/ECDSA/);
  });

  it('5xx is retried in-process; still failing after the attempts it is a retryable REKOR_UNAVAILABLE', async () => {
    rekor.fail(503, 2);
    await expect(client({ attempts: 3 }).createEntry(rsaEntry('flaky').proposed)).resolves.toMatchObject({ existing: false });
    rekor.fail(502, 10);
    const before = rekor.requests.length;
    await expect(client({ attempts: 3 }).createEntry(rsaEntry('down').proposed)).rejects.toMatchObject({
      code: 'REKOR_UNAVAILABLE',
      retryable: true,
      status: 502,
    });
    expect(rekor.requests.length - before).toBe(3);
  });

  it('a timeout and a refused connection are retryable REKOR_UNAVAILABLE', async () => {
    rekor.delay(500);
    await expect(client({ timeoutMs: 100, attempts: 1 }).createEntry(rsaEntry('slow').proposed)).rejects.toMatchObject({
      code: 'REKOR_UNAVAILABLE',
      retryable: true,
      message: expect.stringMatching(/timed out/),
    });
    rekor.delay(0);
    const gone = await server((_q, s) => s.end());
    await gone.close();
    await expect(client({ url: gone.url, attempts: 1 }).createEntry({})).rejects.toMatchObject({ code: 'REKOR_UNAVAILABLE', retryable: true });
  });

  it('429 with a long Retry-After is not waited for in-process: the job queue waits', async () => {
    const s = await server((_q, res) => res.writeHead(429, { 'retry-after': '60' }).end('{"code":429,"message":"slow down"}'));
    try {
      const started = Date.now();
      await expect(client({ url: s.url, attempts: 5 }).createEntry({})).rejects.toMatchObject({
        code: 'REKOR_UNAVAILABLE',
        retryable: true,
        retryAfterSeconds: 60,
      });
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await s.close();
    }
  });

  it('a refused entry (400) is REKOR_REJECTED and not retried', async () => {
    const before = rekor.requests.length;
    await expect(client().createEntry({ apiVersion: '0.0.1', kind: 'rekord', spec: {} })).rejects.toMatchObject({
      code: 'REKOR_REJECTED',
      retryable: false,
      status: 400,
      message: expect.stringContaining('unsupported kind'),
    });
    expect(rekor.requests.length - before).toBe(1);
  });

  it('a 409 pointing at another host is refused, and that host is never contacted', async () => {
    const elsewhere = await server((_q, s) => s.end('{}'));
    const s = await server((_q, res) => res.writeHead(409, { location: `${elsewhere.url}/api/v1/log/entries/${'a'.repeat(64)}` }).end('{}'));
    try {
      await expect(client({ url: s.url }).createEntry({})).rejects.toMatchObject({
        code: 'REKOR_REJECTED',
        message: expect.stringMatching(/outside the configured Rekor/),
      });
      expect(elsewhere.connections()).toBe(0);
    } finally {
      await s.close();
      await elsewhere.close();
    }
  });

  it('keeps a path prefix of the configured URL; an entry without a SET (Rekor v2-like) is refused', async () => {
    const seen: string[] = [];
    const uuid = 'b'.repeat(64);
    const s = await server((q, res) => {
      seen.push(`${q.method} ${q.url}`);
      res
        .writeHead(201, { 'content-type': 'application/json' })
        .end(
          JSON.stringify({ [uuid]: { body: Buffer.from('{}').toString('base64'), integratedTime: 1, logID: 'c'.repeat(64), logIndex: 7, verification: {} } }),
        );
    });
    try {
      await expect(client({ url: `${s.url}/rekor/` }).createEntry({})).rejects.toMatchObject({
        code: 'REKOR_REJECTED',
        message: expect.stringMatching(/signedEntryTimestamp/),
      });
      expect(seen).toEqual(['POST /rekor/api/v1/log/entries']);
    } finally {
      await s.close();
    }
  });

  it('a huge Retry-After from Rekor is capped (10 minutes): a 429 cannot park the job for years', async () => {
    rekor.fail(429, 1, { 'retry-after': '99999999' });
    const err = await client({ attempts: 3 })
      .createEntry(rsaEntry('parked').proposed)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REKOR_UNAVAILABLE', retryable: true, status: 429, retryAfterSeconds: MAX_RETRY_AFTER_SECONDS });
    rekor.fail(503, 1, { 'retry-after': 'Fri, 31 Dec 9999 23:59:59 GMT' });
    await expect(client({ attempts: 1 }).createEntry(rsaEntry('parked-2').proposed)).rejects.toMatchObject({
      status: 503,
      retryAfterSeconds: MAX_RETRY_AFTER_SECONDS,
    });
  });

  it('a body dripped a byte at a time hits the overall deadline (per-chunk timers never fire)', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const s = await server((_q, res) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      const t = setInterval(() => res.write(' '), 50);
      timers.add(t);
      res.on('close', () => clearInterval(t));
    });
    try {
      const started = Date.now();
      await expect(client({ url: s.url, timeoutMs: 400, attempts: 1 }).createEntry({})).rejects.toMatchObject({
        code: 'REKOR_UNAVAILABLE',
        message: expect.stringMatching(/timed out/),
      });
      expect(Date.now() - started).toBeLessThan(30_000); // bounded (it would drip forever)
    } finally {
      for (const t of timers) clearInterval(t);
      await s.close();
    }
  });

  it('an answer larger than the cap is REKOR_REJECTED, not buffered and not retried', async () => {
    let requests = 0;
    let sent = 0;
    const s = await server((_q, res) => {
      requests++;
      res.writeHead(201, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const more = () => {
        while (sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('error', () => undefined);
      more();
    });
    try {
      await expect(client({ url: s.url, attempts: 3 }).createEntry({})).rejects.toMatchObject({
        code: 'REKOR_REJECTED',
        retryable: false,
        message: expect.stringMatching(/more than 4194304 bytes/),
      });
      expect(requests).toBe(1);
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await s.close();
    }
  });

  it('entries of the wrong shape are REKOR_REJECTED naming the field; the error says where, not what', async () => {
    const uuid = 'd'.repeat(64);
    const good = {
      body: Buffer.from('{}').toString('base64'),
      integratedTime: 1,
      logID: 'c'.repeat(64),
      logIndex: 7,
      verification: { signedEntryTimestamp: 'c2V0' },
    };
    let answer: unknown;
    const s = await server((_q, res) => res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(answer)));
    try {
      const cases: [unknown, RegExp][] = [
        [42, /not an object/],
        [{ [uuid]: { ...good, logIndex: '7' } }, /logIndex/],
        [{ [uuid]: { ...good, integratedTime: -1 } }, /integratedTime/],
        [{ [uuid]: { ...good, body: 'not base64!' } }, /body/],
        [{ [uuid]: { ...good, verification: 'x' } }, /verification/],
        [{ [uuid]: { ...good, logID: 'zz' } }, /logID/],
        [{ [uuid]: good, ['e'.repeat(64)]: good }, /expected one entry, got 2/],
      ];
      for (const [a, why] of cases) {
        answer = a;
        await expect(client({ url: s.url }).createEntry({}), JSON.stringify(a).slice(0, 80)).rejects.toMatchObject({
          code: 'REKOR_REJECTED',
          retryable: false,
          message: expect.stringMatching(why),
        });
      }
      answer = { [uuid]: good };
      await expect(client({ url: s.url }).createEntry({})).resolves.toMatchObject({ uuid, logIndex: 7, signedEntryTimestamp: 'c2V0' });
    } finally {
      await s.close();
    }
  });

  it("Rekor's error message is redacted before it reaches the error", async () => {
    const s = await server((_q, res) =>
      res
        .writeHead(400, { 'content-type': 'application/json' })
        .end(JSON.stringify({ code: 400, message: 'bad request with Authorization: Bearer sekret-value-1 and token=sekret-value-2' })),
    );
    try {
      const err = (await client({ url: s.url })
        .createEntry({})
        .catch((e: unknown) => e)) as Error;
      expect(err).toMatchObject({ code: 'REKOR_REJECTED', status: 400, message: expect.stringContaining('bad request with Authorization: Bearer [redacted]') });
      expect(err.message).not.toMatch(/sekret-value/);
    } finally {
      await s.close();
    }
  });
});
