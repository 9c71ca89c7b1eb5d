/**
 * A local Alibaba Cloud KMS stand-in for the real `@alicloud/kms20160120` (1.2.0, the RPC-style
 * client on `@alicloud/rpc-client`), speaking what that SDK sends and expects:
 *
 * - `POST /` with every parameter in the query string: `Action`, `Format=json`,
 *   `Version=2016-01-20`, `Timestamp`, `SignatureNonce`, the API parameters (`KeyId`,
 *   `KeyVersionId`, `Algorithm`, `Digest`, ...), and `AccessKeyId`, `SignatureMethod=HMAC-SHA1`,
 *   `SignatureVersion=1.0`, `Signature` (plus `SecurityToken` with STS credentials).
 * - The signature is checked the way the gateway does it (signature version 1.0):
 *   base64(HMAC-SHA1(secret + "&", "POST&%2F&" + pct(sorted, pct-encoded query without
 *   Signature))). A mismatch answers 400 SignatureDoesNotMatch whose message, like Alibaba's,
 *   quotes the server's string to sign (which contains the AccessKeyId and SecurityToken), so
 *   tests can check that the provider does not pass it on. Reused nonces are refused.
 * - Answers are flat JSON; errors are `{"RequestId","HostId","Code","Message","Recommend"}` with
 *   the HTTP status, which the SDK turns into an error with `code: "<Code>Error"`.
 * - Actions: DescribeKey, GetPublicKey, AsymmetricSign, ListKeyVersions. KeyId may be a key id
 *   or an alias (`alias/x`). AsymmetricSign: RSA_PKCS1_SHA_256 via `privateEncrypt` over
 *   DigestInfo||digest, ECDSA_SHA_256 DER via src/kms/ecdsa.ts (prehashed).
 * Listens on 127.0.0.1 only.
 */
import {
  constants,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  privateEncrypt,
  randomBytes,
  randomUUID,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createP256DigestSigner } from '../../../src/kms/ecdsa.js';
import { emsaPssEncode } from '../../../src/kms/pss.js';

const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export type AlibabaKeySpec = 'RSA_2048' | 'RSA_3072' | 'EC_P256' | 'EC_P256K' | 'EC_SM2' | 'Aliyun_AES_256';

export interface AlibabaStandinKey {
  keyId: string;
  aliases: string[];
  keySpec: AlibabaKeySpec;
  /** SIGN/VERIFY or ENCRYPT/DECRYPT */
  keyUsage: string;
  /** Enabled | Disabled | PendingDeletion | PendingImport */
  keyState: string;
  versions: string[];
  /** Reported as KeyMetadata.PrimaryKeyVersion; '' to leave it out (as for asymmetric keys). */
  primaryKeyVersion: string;
  privateKey?: KeyObject;
  publicKeyPem?: string;
}

export interface AlibabaAddKeyOptions {
  keySpec?: AlibabaKeySpec;
  keyUsage?: string;
  keyState?: string;
  alias?: string;
  /** Number of key versions (all share the key pair); default 1. */
  versions?: number;
  /** Whether DescribeKey reports PrimaryKeyVersion (default true). */
  reportPrimaryVersion?: boolean;
  privateKey?: KeyObject;
}

export interface AlibabaFault {
  code?: string;
  status?: number;
  message?: string;
  delayMs?: number;
  rawBody?: string;
  hangUp?: boolean;
  /** Answer 200 and drip the body one byte every this many ms, for ever. */
  dripMs?: number;
}

export type AlibabaAction = 'DescribeKey' | 'GetPublicKey' | 'AsymmetricSign' | 'ListKeyVersions';

export interface AlibabaKmsStandin {
  url: string;
  /** host:port, the form the SDK's `endpoint` takes. */
  endpoint: string;
  port: number;
  accessKeyId: string;
  accessKeySecret: string;
  /** Requests per Action (counted before any check). */
  calls: Record<string, number>;
  requests: { method: string; query: Record<string, string>; headers: IncomingMessage['headers'] }[];
  signTimesMs: number[];
  /**
   * Salt length of RSA_PSS_SHA_256 signatures (default 32, the SHA-256 size; the API reference
   * does not state it): set it to another length to see the provider refuse the answer.
   */
  pssSaltLength: number;
  keys: AlibabaStandinKey[];
  addKey(opts?: AlibabaAddKeyOptions): AlibabaStandinKey;
  fail(action: AlibabaAction | '*', fault: AlibabaFault, times?: number): void;
  reset(): void;
  close(): Promise<void>;
}

/** RFC 3986 percent-encoding as the RPC signature wants it (rpc-util's `encode`). */
function pct(s: string): string {
  return encodeURIComponent(s).replace(/!/g, '%21').replace(/'/g, '%27').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\*/g, '%2A');
}

export function rpcStringToSign(method: string, params: Record<string, string>): string {
  const canonical = Object.keys(params)
    .filter((k) => k !== 'Signature')
    .sort()
    .map((k) => `${pct(k)}=${pct(params[k]!)}`)
    .join('&');
  return `${method}&${pct('/')}&${pct(canonical)}`;
}

function generate(spec: AlibabaKeySpec): KeyObject | undefined {
  switch (spec) {
    case 'RSA_2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    case 'RSA_3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;
    case 'EC_P256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'EC_P256K':
      return generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    default:
      return undefined;
  }
}

export async function startAlibabaKmsStandin(
  opts: { accessKeyId?: string; accessKeySecret?: string; securityToken?: string } = {},
): Promise<AlibabaKmsStandin> {
  const accessKeyId = opts.accessKeyId ?? 'LTAIstandin0000000001';
  const accessKeySecret = opts.accessKeySecret ?? 'standin-access-key-secret-do-not-log';
  const keys: AlibabaStandinKey[] = [];
  const faults: { action: AlibabaAction | '*'; fault: AlibabaFault; left: number }[] = [];
  const calls: Record<string, number> = {};
  const requests: AlibabaKmsStandin['requests'] = [];
  const signTimesMs: number[] = [];
  const nonces = new Set<string>();
  const signers = new WeakMap<AlibabaStandinKey, (d: Buffer) => Buffer>();

  function send(res: ServerResponse, status: number, body: Record<string, unknown>): void {
    const text = JSON.stringify({ RequestId: randomUUID(), ...body });
    res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
  function error(res: ServerResponse, status: number, code: string, message: string): void {
    send(res, status, { HostId: 'kms.standin.aliyuncs.com', Code: code, Message: message, Recommend: 'https://api.aliyun.com/troubleshoot' });
  }

  function findKey(id: string | undefined): AlibabaStandinKey | undefined {
    if (!id) return undefined;
    return keys.find((k) => k.keyId === id || k.aliases.includes(id));
  }

  function keyUsable(res: ServerResponse, key: AlibabaStandinKey): boolean {
    if (key.keyState === 'Enabled') return true;
    if (key.keyState === 'Disabled') error(res, 409, 'Rejected.Disabled', 'The request was rejected because the key state is Disabled.');
    else if (key.keyState === 'PendingDeletion')
      error(res, 409, 'Rejetced.PendingDeletion', 'The request was rejected because the key state is PendingDeletion.');
    else error(res, 409, 'Rejected.PendingImport', 'The request was rejected because the key state is PendingImport.');
    return false;
  }

  function handle(q: Record<string, string>, res: ServerResponse): void {
    const action = q.Action;
    const key = findKey(q.KeyId);
    if (action === 'DescribeKey') {
      if (!key) return error(res, 404, 'Forbidden.KeyNotFound', 'The specified Key is not found.');
      return send(res, 200, {
        KeyMetadata: {
          KeyId: key.keyId,
          Arn: `acs:kms:cn-hangzhou:1234567890:key/${key.keyId}`,
          KeySpec: key.keySpec,
          KeyUsage: key.keyUsage,
          KeyState: key.keyState,
          Origin: 'Aliyun_KMS',
          ProtectionLevel: 'SOFTWARE',
          CreationDate: '2026-01-01T00:00:00Z',
          Creator: '1234567890',
          Description: 'stand-in key',
          ...(key.primaryKeyVersion ? { PrimaryKeyVersion: key.primaryKeyVersion } : {}),
        },
      });
    }
    if (action === 'ListKeyVersions') {
      if (!key) return error(res, 404, 'Forbidden.KeyNotFound', 'The specified Key is not found.');
      return send(res, 200, {
        KeyVersions: { KeyVersion: key.versions.map((v) => ({ KeyId: key.keyId, KeyVersionId: v, CreationDate: '2026-01-01T00:00:00Z' })) },
        TotalCount: key.versions.length,
        PageNumber: Number(q.PageNumber ?? 1),
        PageSize: Number(q.PageSize ?? 10),
      });
    }
    if (action === 'GetPublicKey' || action === 'AsymmetricSign') {
      if (!key) return error(res, 404, 'Forbidden.KeyNotFound', 'The specified Key is not found.');
      if (!q.KeyVersionId) return error(res, 400, 'MissingParameter', 'The parameter "KeyVersionId" is needed but not provided.');
      if (!key.versions.includes(q.KeyVersionId)) return error(res, 404, 'Forbidden.ResourceNotFound', 'The specified resource is not found.');
      if (!keyUsable(res, key)) return;
      if (key.keyUsage !== 'SIGN/VERIFY' || !key.privateKey) {
        return error(res, 400, 'Rejected.UnsupportedOperation', 'Unsupported operation.');
      }
      if (action === 'GetPublicKey') return send(res, 200, { KeyId: key.keyId, KeyVersionId: q.KeyVersionId, PublicKey: key.publicKeyPem });
      const t0 = performance.now();
      const digest = Buffer.from(q.Digest ?? '', 'base64');
      if (digest.length !== 32) return error(res, 400, 'InvalidParameter', 'The specified parameter "Digest" is not valid.');
      let sig: Buffer;
      if (q.Algorithm === 'RSA_PKCS1_SHA_256' && key.keySpec.startsWith('RSA_')) {
        sig = privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
      } else if (q.Algorithm === 'RSA_PSS_SHA_256' && key.keySpec.startsWith('RSA_')) {
        // RSASSA-PSS with SHA-256 and MGF1-SHA-256; the salt length is the stand-in's setting
        const bits = key.privateKey.asymmetricKeyDetails!.modulusLength!;
        const em = emsaPssEncode(digest, bits, randomBytes(pssSaltLength));
        const k = Math.ceil(bits / 8);
        sig = privateEncrypt({ key: key.privateKey, padding: constants.RSA_NO_PADDING }, Buffer.concat([Buffer.alloc(k - em.length), em]));
      } else if (q.Algorithm === 'ECDSA_SHA_256' && key.keySpec === 'EC_P256') {
        let signer = signers.get(key);
        if (!signer) {
          signer = createP256DigestSigner(key.privateKey);
          signers.set(key, signer);
        }
        sig = signer(digest);
      } else {
        return error(res, 400, 'InvalidParameter', 'The specified parameter "Algorithm" is not valid.');
      }
      send(res, 200, { KeyId: key.keyId, KeyVersionId: q.KeyVersionId, Value: sig.toString('base64') });
      signTimesMs.push(performance.now() - t0);
      return;
    }
    return error(res, 404, 'InvalidAction.NotFound', `Specified api "${action}" is not found.`);
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://standin');
        const query: Record<string, string> = {};
        for (const [k, v] of url.searchParams) query[k] = v;
        // The RPC client sends form-encoded bodies for some APIs; fold them in like the gateway.
        if (chunks.length && String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
          for (const [k, v] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) query[k] = v;
        }
        const action = query.Action ?? '';
        calls[action] = (calls[action] ?? 0) + 1;
        requests.push({ method: req.method ?? '', query, headers: req.headers });

        const i = faults.findIndex((f) => f.left > 0 && (f.action === '*' || f.action === action));
        if (i >= 0) {
          const f = faults[i]!;
          f.left--;
          if (f.left === 0) faults.splice(i, 1);
          const fault = f.fault;
          if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
          if (res.destroyed) return;
          if (fault.hangUp) {
            req.socket.destroy();
            return;
          }
          if (fault.dripMs) {
            res.writeHead(200, { 'content-type': 'application/json' });
            const t = setInterval(() => res.write(' '), fault.dripMs);
            res.on('close', () => clearInterval(t));
            return;
          }
          if (fault.rawBody !== undefined) {
            res.writeHead(fault.status ?? 502, { 'content-type': 'text/html' });
            res.end(fault.rawBody);
            return;
          }
          if (fault.code) return error(res, fault.status ?? 400, fault.code, fault.message ?? `${fault.code} from stand-in`);
        }

        if (req.method !== 'POST' || url.pathname !== '/') return error(res, 404, 'InvalidAction.NotFound', 'only POST / is served');
        for (const p of ['Action', 'Format', 'Version', 'Timestamp', 'SignatureNonce', 'AccessKeyId', 'SignatureMethod', 'SignatureVersion', 'Signature']) {
          if (!query[p]) return error(res, 400, 'MissingParameter', `The parameter "${p}" is needed but not provided.`);
        }
        if (query.Version !== '2016-01-20') return error(res, 400, 'InvalidVersion', `Specified parameter Version is not valid.`);
        if (query.SignatureMethod !== 'HMAC-SHA1' || query.SignatureVersion !== '1.0') {
          return error(res, 400, 'InvalidParameter', 'SignatureMethod/SignatureVersion not supported.');
        }
        if (Math.abs(Date.parse(query.Timestamp!) - Date.now()) > 15 * 60_000) {
          return error(res, 400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.');
        }
        if (query.AccessKeyId !== accessKeyId) {
          return error(res, 404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
        }
        if (opts.securityToken !== undefined && query.SecurityToken !== opts.securityToken) {
          return error(res, 400, 'InvalidSecurityToken.Mismatch', 'Specified SecurityToken is invalid.');
        }
        const stringToSign = rpcStringToSign(req.method ?? 'POST', query);
        const expected = createHmac('sha1', `${accessKeySecret}&`).update(stringToSign).digest();
        const given = Buffer.from(query.Signature!, 'base64');
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          return error(res, 400, 'SignatureDoesNotMatch', `Specified signature is not matched with our calculation. server string to sign is:${stringToSign}`);
        }
        if (nonces.has(query.SignatureNonce!)) return error(res, 400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
        nonces.add(query.SignatureNonce!);
        handle(query, res);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let pssSaltLength = 32;

  return {
    url: `http://127.0.0.1:${port}`,
    endpoint: `127.0.0.1:${port}`,
    port,
    accessKeyId,
    accessKeySecret,
    calls,
    requests,
    signTimesMs,
    get pssSaltLength() {
      return pssSaltLength;
    },
    set pssSaltLength(n: number) {
      pssSaltLength = n;
    },
    keys,
    addKey(o: AlibabaAddKeyOptions = {}): AlibabaStandinKey {
      const keySpec = o.keySpec ?? 'EC_P256';
      const privateKey = o.privateKey ?? generate(keySpec);
      const versions = Array.from({ length: o.versions ?? 1 }, () => randomUUID());
      const key: AlibabaStandinKey = {
        keyId: randomUUID(),
        aliases: o.alias ? [o.alias.startsWith('alias/') ? o.alias : `alias/${o.alias}`] : [],
        keySpec,
        keyUsage: o.keyUsage ?? (privateKey ? 'SIGN/VERIFY' : 'ENCRYPT/DECRYPT'),
        keyState: o.keyState ?? 'Enabled',
        versions,
        primaryKeyVersion: o.reportPrimaryVersion === false ? '' : versions[versions.length - 1]!,
        ...(privateKey ? { privateKey, publicKeyPem: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string } : {}),
      };
      keys.push(key);
      return key;
    },
    fail(action, fault, times = 1) {
      faults.push({ action, fault, left: times });
    },
    reset() {
      pssSaltLength = 32;
      faults.length = 0;
      requests.length = 0;
      signTimesMs.length = 0;
      for (const k of Object.keys(calls)) delete calls[k];
    },
    close() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
