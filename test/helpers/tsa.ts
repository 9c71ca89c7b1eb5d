/**
 * An RFC 3161 timestamp authority stand-in on 127.0.0.1, built on @sigstore/mock 0.12.1's TSA
 * (initializeTSA: a P-256 root "CN=tsa,O=sigstore.mock" and a timestamping certificate
 * "CN=tsa signing,O=sigstore.mock" with EKU timeStamping; tokens are CMS SignedData with an
 * ESS signing-certificate-v2 attribute, like sigstore's timestamp-authority).
 *
 * Wire: POST with `application/timestamp-query` (a DER TimeStampReq), answered `200
 * application/timestamp-reply` (a DER TimeStampResp). The mock's own handler only speaks
 * sigstore's JSON API, so the DER request is decoded here (with @sigstore/core's ASN1Obj) and its
 * imprint, nonce and certReq handed to the mock TSA. The mock takes the nonce as a JS number
 * (asn1js Integer({ value })), which cannot hold a 63-bit nonce exactly, so the TSTInfo it builds
 * gets the request's nonce bytes put back verbatim (an instance override of the mock's
 * `tstInfo`, private in 0.12.1, pinned).
 *
 * Every stand-in has its own key pair, so a second one is a "wrong TSA" with the same names and
 * serial numbers as the first (only the signature tells them apart).
 *
 * Test controls: `fail(status, count, headers?)` answers the next `count` requests with an HTTP
 * status; `tamper(mode)` makes the next answers wrong in one way ('nonce', 'imprint', 'rejection'
 * a PKIStatus rejection, 'waiting' a PKIStatus waiting); `hang(true)` never answers (until stop);
 * `requests` records what was asked; `startTsa({ genTime })` fixes the time it stamps.
 */
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { initializeTSA } from '@sigstore/mock';
import { ASN1Obj } from '@sigstore/core';

export interface TsaRequest {
  contentType: string;
  /** the raw request body */
  body: Buffer;
  /** decoded TimeStampReq fields (undefined when the body was not one) */
  version?: bigint;
  hashAlgorithm?: string;
  hash?: Buffer;
  nonce?: bigint;
  certReq?: boolean;
  /** HTTP status answered */
  status: number;
}

export type TsaTamper = 'none' | 'nonce' | 'imprint' | 'rejection' | 'waiting';

export interface TsaStandIn {
  url: string;
  /** PEM: the timestamping certificate, then the root. */
  chainPem: string;
  leafPem: string;
  rootPem: string;
  requests: TsaRequest[];
  /** Answer the next `count` requests with `status` (and `headers`); fail(0, 0) clears. */
  fail(status: number, count: number, headers?: Record<string, string>): void;
  /** Make the following answers wrong in one way until tamper('none'). */
  tamper(mode: TsaTamper): void;
  /** Never answer (true) until hang(false) or stop(). */
  hang(on: boolean): void;
  stop(): Promise<void>;
}

const toPem = (der: ArrayBufferView): string => new X509Certificate(Buffer.from(der.buffer, der.byteOffset, der.byteLength)).toString();

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

/** A TimeStampResp with only a PKIStatusInfo (no token): status, a statusString, failInfo badRequest. */
function statusOnly(status: number, text: string): Buffer {
  const info = tlv(0x30, Buffer.concat([Buffer.from([0x02, 0x01, status]), tlv(0x30, tlv(0x0c, Buffer.from(text))), Buffer.from([0x03, 0x02, 0x05, 0x20])]));
  return tlv(0x30, info);
}

function decodeRequest(body: Buffer): Omit<TsaRequest, 'contentType' | 'body' | 'status'> {
  const req = ASN1Obj.parseBuffer(Buffer.from(body));
  const [version, imprint, ...rest] = req.subs;
  const out: Omit<TsaRequest, 'contentType' | 'body' | 'status'> = {
    version: version!.toInteger(),
    hashAlgorithm: imprint!.subs[0]!.subs[0]!.toOID(),
    hash: Buffer.from(imprint!.subs[1]!.value),
    certReq: false,
  };
  for (const s of rest) {
    if (s.tag.isUniversal() && s.tag.isInteger()) out.nonce = s.toInteger();
    else if (s.tag.isBoolean()) out.certReq = s.toBoolean();
  }
  return out;
}

/** The DER content octets of a non-negative INTEGER. */
function integerBytes(n: bigint): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const b = Buffer.from(hex, 'hex');
  return b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
}

/**
 * The mock stamps `new Date()`; pkijs writes its milliseconds DER-minimal ("...40.75Z"), which is
 * valid RFC 3161 but @sigstore/core 3.2 (so @sigstore/verify) cannot read (it wants exactly three
 * digits; sigstore's own timestamp-authority writes whole seconds). By default the stand-in moves
 * such a time by a millisecond so every token is readable by every verifier in the tests; pass
 * `genTime` to choose the time (e.g. a ".5" fraction to test signet's own reader).
 */
function readableNow(): Date {
  const d = new Date();
  if (d.getUTCMilliseconds() % 10 === 0) d.setUTCMilliseconds(d.getUTCMilliseconds() + 1);
  return d;
}

export async function startTsa(opts: { genTime?: () => Date } = {}): Promise<TsaStandIn> {
  const tsa = await initializeTSA(generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  (tsa as unknown as { getCurrentTime: () => Date }).getCurrentTime = opts.genTime ?? readableNow;
  // put the request's exact nonce into the TSTInfo (see the opening comment)
  type TstInfo = { nonce?: { constructor: new (p: { valueHex: Uint8Array }) => unknown } | unknown };
  const impl = tsa as unknown as { tstInfo(req: unknown): TstInfo };
  const original = impl.tstInfo.bind(tsa);
  impl.tstInfo = (req: unknown) => {
    const t = original(req);
    const exact = (req as { exactNonce?: bigint }).exactNonce;
    const Int = (t.nonce as { constructor: new (p: { valueHex: Uint8Array }) => unknown }).constructor;
    t.nonce = exact === undefined ? undefined : new Int({ valueHex: new Uint8Array(integerBytes(exact)) });
    return t;
  };
  const leafPem = toPem(tsa.intCertificate);
  const rootPem = toPem(tsa.rootCertificate);

  const requests: TsaRequest[] = [];
  const hung = new Set<ServerResponse>();
  let failStatus = 0;
  let failCount = 0;
  let failHeaders: Record<string, string> = {};
  let mode: TsaTamper = 'none';
  let hanging = false;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const entry: TsaRequest = { contentType: String(req.headers['content-type'] ?? ''), body, status: 0 };
    requests.push(entry);
    const answer = (status: number, payload: Buffer | string, headers: Record<string, string> = {}) => {
      entry.status = status;
      res.writeHead(status, { 'content-type': typeof payload === 'string' ? 'text/plain' : 'application/timestamp-reply', ...headers });
      res.end(payload);
    };
    if (hanging) {
      hung.add(res);
      return;
    }
    if (failCount > 0) {
      failCount--;
      answer(failStatus, `stand-in failure ${failStatus}`, failHeaders);
      return;
    }
    if (req.method !== 'POST' || entry.contentType !== 'application/timestamp-query') {
      answer(400, 'expected POST application/timestamp-query');
      return;
    }
    try {
      Object.assign(entry, decodeRequest(body));
    } catch {
      answer(400, 'not a DER TimeStampReq');
      return;
    }
    if (mode === 'rejection') return answer(200, statusOnly(2, 'request refused by the stand-in'));
    if (mode === 'waiting') return answer(200, statusOnly(3, 'busy'));
    const hash = mode === 'imprint' ? createHash('sha256').update('something else').digest() : entry.hash!;
    const nonce = entry.nonce === undefined ? undefined : mode === 'nonce' ? entry.nonce + 1n : entry.nonce;
    const resp = await tsa.timestamp({
      artifactHash: hash,
      hashAlgorithmOID: entry.hashAlgorithm!,
      // the number form is what the mock reads; exactNonce (above) replaces it with the exact value
      nonce: nonce === undefined ? 0 : Number(nonce & 0xffffffffn),
      policyOID: '1.3.6.1.4.1.57264.2',
      certReq: entry.certReq ?? false,
      exactNonce: nonce,
    } as Parameters<typeof tsa.timestamp>[0]);
    answer(200, Buffer.from(resp.buffer, resp.byteOffset, resp.byteLength));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/api/v1/timestamp`,
    chainPem: leafPem + rootPem,
    leafPem,
    rootPem,
    requests,
    fail(status, count, headers = {}) {
      failStatus = status;
      failCount = count;
      failHeaders = headers;
    },
    tamper(m) {
      mode = m;
    },
    hang(on) {
      hanging = on;
      if (!on) for (const r of hung) r.destroy();
      if (!on) hung.clear();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const r of hung) r.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
