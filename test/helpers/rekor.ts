/**
 * A Rekor v1 stand-in with its own ECDSA P-256 log key, served over HTTP on 127.0.0.1.
 *
 * What it does like sigstore/rekor (v1.3.9, the version cosign 2.5 is built with):
 * - POST /api/v1/log/entries for hashedrekord v0.0.1 and dsse v0.0.1: canonical body (sorted keys,
 *   re-marshalled PEM; dsse: envelopeHash/payloadHash/signatures{signature,verifier}), 201 with
 *   `{uuid: LogEntry}`, ETag and Location; an identical entry again -> 409 with Location;
 * - GET /api/v1/log/entries/{uuid};
 * - SET = ECDSA over JCS({body, integratedTime, logIndex, logID}) (pkg/api/entries.go signEntry),
 *   logID = sha256(DER SPKI);
 * - an RFC 6962 Merkle tree with real inclusion proofs and a signed checkpoint note
 *   (pkg/util/checkpoint.go, signed_note.go: "<origin>\n<size>\n<b64 root>\n\n— <name> <b64(keyhint||sig)>\n");
 * - checks RSA hashedrekord signatures (PKCS#1 v1.5 over the digest) and DSSE envelope signatures.
 * Not like Rekor: one tree, no sharding, no search/retrieve endpoints, no attestation storage.
 *
 * Test controls: `fail(status, count, headers?)` answers the next `count` requests with `status`
 * (and extra headers, e.g. a `retry-after`),
 * `delay(ms)` holds answers back, `requests` records what was asked.
 */
import { createHash, createPublicKey, generateKeyPairSync, publicDecrypt, sign, verify, X509Certificate, constants, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalize } from '../../src/transparency/jcs.js';

export interface RekorStandIn {
  url: string;
  /** PEM of the log's public key (give to cosign as SIGSTORE_REKOR_PUBLIC_KEY). */
  publicKeyPem: string;
  /** hex sha256 of the DER public key */
  logId: string;
  /** Entries in the log. */
  size(): number;
  requests: { method: string; path: string; status: number }[];
  /** Answer the next `count` requests with `status` (e.g. 503) and `headers`; count Infinity = until cleared with fail(0, 0). */
  fail(status: number, count: number, headers?: Record<string, string>): void;
  /** Wait this long before answering (simulate a hung Rekor). */
  delay(ms: number): void;
  /** A sigstore TrustedRoot JSON naming this log (and optional CAs), for cosign --trusted-root. */
  trustedRoot(opts?: { certificateAuthorities?: { certificates: string[] }[] }): string;
  stop(): Promise<void>;
}

/**
 * The name the log signs its checkpoints as. Rekor uses its `--rekor_server.hostname` (default:
 * the machine's hostname); sigstore-js only accepts a checkpoint whose signer name matches the
 * log's base URL in the trusted root, so the stand-in signs as the host it is served on, as a
 * Rekor deployed under its own name does.
 */
const HOSTNAME = '127.0.0.1';
/** First global log index (the bundle's proto form cannot carry index 0). */
const INDEX_OFFSET = 1000;

export async function startRekor(opts: { keyPair?: { privateKey: KeyObject; publicKey: KeyObject } } = {}): Promise<RekorStandIn> {
  const { privateKey, publicKey } = opts.keyPair ?? generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const logId = createHash('sha256').update(spki).digest('hex');
  const treeId = 1_000_000 + Math.floor(Math.random() * 1_000_000);
  const leaves: Buffer[] = []; // leaf hashes
  const entries = new Map<string, { body: string; integratedTime: number; index: number }>();
  const requests: RekorStandIn['requests'] = [];
  let failStatus = 0;
  let failCount = 0;
  let failHeaders: Record<string, string> = {};
  let delayMs = 0;

  const respond = (res: ServerResponse, req: IncomingMessage, status: number, body: unknown, headers: Record<string, string> = {}) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', status });
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, req: IncomingMessage, status: number, message: string, headers: Record<string, string> = {}) =>
    respond(res, req, status, { code: status, message }, headers);

  const logEntry = (uuid: string) => {
    const e = entries.get(uuid)!;
    const logIndex = INDEX_OFFSET + e.index;
    const signed = canonicalize({ body: e.body, integratedTime: e.integratedTime, logIndex, logID: logId });
    const set = sign('sha256', Buffer.from(signed), privateKey).toString('base64');
    const treeSize = leaves.length;
    const root = mth(leaves, 0, treeSize);
    return {
      [uuid]: {
        body: e.body,
        integratedTime: e.integratedTime,
        logID: logId,
        logIndex,
        verification: {
          inclusionProof: {
            checkpoint: checkpoint(treeSize, root),
            hashes: path(e.index, leaves, 0, treeSize).map((h) => h.toString('hex')),
            logIndex: e.index,
            rootHash: root.toString('hex'),
            treeSize,
          },
          signedEntryTimestamp: set,
        },
      },
    };
  };

  const checkpoint = (size: number, root: Buffer): string => {
    const note = `${HOSTNAME} - ${treeId}\n${size}\n${root.toString('base64')}\n`;
    const sig = sign('sha256', Buffer.from(note), privateKey);
    const hint = createHash('sha256').update(spki).digest().subarray(0, 4);
    return `${note}\n\u2014 ${HOSTNAME} ${Buffer.concat([hint, sig]).toString('base64')}\n`;
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const go = () => {
        if (failCount > 0) {
          failCount--;
          return error(res, req, failStatus, 'injected failure', failHeaders);
        }
        const u = new URL(req.url ?? '/', 'http://x');
        if (req.method === 'POST' && u.pathname === '/api/v1/log/entries') {
          let canonical: unknown;
          try {
            canonical = canonicalEntry(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch (err) {
            return error(res, req, 400, (err as Error).message);
          }
          const bodyBytes = Buffer.from(canonicalize(canonical));
          const leaf = createHash('sha256')
            .update(Buffer.concat([Buffer.from([0]), bodyBytes]))
            .digest();
          const uuid = leaf.toString('hex');
          const location = `/api/v1/log/entries/${uuid}`;
          if (entries.has(uuid)) {
            return respond(res, req, 409, { code: 409, message: `An equivalent entry already exists in the transparency log with UUID ${uuid}` }, { location });
          }
          entries.set(uuid, { body: bodyBytes.toString('base64'), integratedTime: Math.floor(Date.now() / 1000), index: leaves.length });
          leaves.push(leaf);
          return respond(res, req, 201, logEntry(uuid), { etag: uuid, location });
        }
        const m = /^\/api\/v1\/log\/entries\/([0-9a-f]{64})$/.exec(u.pathname);
        if (req.method === 'GET' && m) {
          if (!entries.has(m[1]!)) return error(res, req, 404, 'entry not found');
          return respond(res, req, 200, logEntry(m[1]!));
        }
        return error(res, req, 404, 'not found');
      };
      if (delayMs > 0) setTimeout(go, delayMs);
      else go();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    logId,
    size: () => leaves.length,
    requests,
    fail(status, count, headers = {}) {
      failStatus = status;
      failCount = count;
      failHeaders = headers;
    },
    delay(ms) {
      delayMs = ms;
    },
    trustedRoot(o = {}) {
      return JSON.stringify({
        mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
        tlogs: [
          {
            baseUrl: url,
            hashAlgorithm: 'SHA2_256',
            publicKey: { rawBytes: spki.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: '2000-01-01T00:00:00Z' } },
            logId: { keyId: Buffer.from(logId, 'hex').toString('base64') },
          },
        ],
        certificateAuthorities: (o.certificateAuthorities ?? []).map((ca, i) => ({
          subject: { organization: 'signet test', commonName: `ca-${i}` },
          uri: `https://ca-${i}.signet.test`,
          certChain: { certificates: ca.certificates.map((pem) => ({ rawBytes: new X509Certificate(pem).raw.toString('base64') })) },
          validFor: { start: '2000-01-01T00:00:00Z' },
        })),
        ctlogs: [],
        timestampAuthorities: [],
      });
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A TrustedRoot with no logs (cosign --trusted-root with --insecure-ignore-tlog), plus optional CAs. */
export function emptyTrustedRoot(certificateAuthorities: { certificates: string[] }[] = []): string {
  return JSON.stringify({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [],
    certificateAuthorities: certificateAuthorities.map((ca, i) => ({
      subject: { organization: 'signet test', commonName: `ca-${i}` },
      uri: `https://ca-${i}.signet.test`,
      certChain: { certificates: ca.certificates.map((pem) => ({ rawBytes: new X509Certificate(pem).raw.toString('base64') })) },
      validFor: { start: '2000-01-01T00:00:00Z' },
    })),
    ctlogs: [],
    timestampAuthorities: [],
  });
}

/** Rekor's canonical form of a proposed entry (what it stores, what the SET and the leaf cover). */
function canonicalEntry(p: any): unknown {
  if (p?.apiVersion !== '0.0.1') throw new Error('unsupported apiVersion');
  if (p.kind === 'hashedrekord') {
    const hash = p.spec?.data?.hash;
    const sig = p.spec?.signature;
    if (hash?.algorithm !== 'sha256' || !/^[0-9a-f]{64}$/.test(hash.value ?? '')) throw new Error('invalid hash');
    if (typeof sig?.content !== 'string' || typeof sig?.publicKey?.content !== 'string') throw new Error('missing signature or key');
    const pem = canonicalPem(Buffer.from(sig.publicKey.content, 'base64').toString('utf8'));
    const key = keyOf(pem);
    if (key.asymmetricKeyType === 'rsa') {
      // PKCS#1 v1.5 over the digest, as Rekor's verifier does for hashedrekord
      const em = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(sig.content, 'base64'));
      const want = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), Buffer.from(hash.value, 'hex')]);
      if (!em.equals(want)) throw new Error('signature does not verify');
    }
    return {
      apiVersion: '0.0.1',
      kind: 'hashedrekord',
      spec: {
        data: { hash: { algorithm: 'sha256', value: hash.value } },
        signature: { content: sig.content, publicKey: { content: Buffer.from(pem).toString('base64') } },
      },
    };
  }
  if (p.kind === 'dsse') {
    const pc = p.spec?.proposedContent;
    if (typeof pc?.envelope !== 'string' || !Array.isArray(pc.verifiers) || pc.verifiers.length === 0) throw new Error('invalid dsse proposal');
    const env = JSON.parse(pc.envelope) as { payload: string; payloadType: string; signatures: { sig: string }[] };
    const payload = Buffer.from(env.payload, 'base64');
    const pemList = pc.verifiers.map((v: string) => canonicalPem(Buffer.from(v, 'base64').toString('utf8')));
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(env.payloadType)} ${env.payloadType} ${payload.length} `), payload]);
    const signatures = env.signatures.map((s) => {
      const pem = pemList.find((k: string) => verify('sha256', pae, keyOf(k), Buffer.from(s.sig, 'base64')));
      if (!pem) throw new Error('dsse signature does not verify with any verifier');
      return { signature: s.sig, verifier: Buffer.from(pem).toString('base64') };
    });
    signatures.sort((a, b) => (a.signature < b.signature ? -1 : 1));
    const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
    return {
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: { envelopeHash: { algorithm: 'sha256', value: sha(pc.envelope) }, payloadHash: { algorithm: 'sha256', value: sha(payload) }, signatures },
    };
  }
  throw new Error(`unsupported kind ${String(p.kind)}`);
}

function canonicalPem(pem: string): string {
  if (pem.includes('BEGIN CERTIFICATE')) return new X509Certificate(pem).toString();
  if (pem.includes('BEGIN PUBLIC KEY')) return createPublicKey(pem).export({ type: 'spki', format: 'pem' }) as string;
  throw new Error('publicKey must be a PEM PUBLIC KEY or CERTIFICATE');
}

function keyOf(pem: string): KeyObject {
  return pem.includes('BEGIN CERTIFICATE') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
}

// ---- RFC 6962 Merkle tree ------------------------------------------------------------------

function node(l: Buffer, r: Buffer): Buffer {
  return createHash('sha256')
    .update(Buffer.concat([Buffer.from([1]), l, r]))
    .digest();
}

function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D[from:to]) over leaf hashes. */
function mth(leaves: readonly Buffer[], from: number, to: number): Buffer {
  const n = to - from;
  if (n === 0) return createHash('sha256').digest();
  if (n === 1) return leaves[from]!;
  const k = split(n);
  return node(mth(leaves, from, from + k), mth(leaves, from + k, to));
}

/** PATH(m, D[from:to]): the audit path, leaf-side first. */
function path(m: number, leaves: readonly Buffer[], from: number, to: number): Buffer[] {
  const n = to - from;
  if (n <= 1) return [];
  const k = split(n);
  return m < k ? [...path(m, leaves, from, from + k), mth(leaves, from + k, to)] : [...path(m - k, leaves, from + k, to), mth(leaves, from, from + k)];
}
