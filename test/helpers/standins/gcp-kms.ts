/**
 * A local stand-in for Google Cloud KMS (google.cloud.kms.v1.KeyManagementService), enough for
 * GetPublicKey and AsymmetricSign, speaking BOTH wire protocols the real `@google-cloud/kms` client
 * uses:
 *
 * - gRPC (the client's default transport, and what production uses): a @grpc/grpc-js server with
 *   the service definition loaded from the package's own .proto files. Plaintext; the client
 *   reaches it with `sslCreds: createInsecure()`, so gax sends no call credentials on this path.
 * - REST (the client's `fallback: true` transport): `GET /v1/{name}/publicKey` and
 *   `POST /v1/{name}:asymmetricSign` with JSON bodies (bytes as base64, int64 as strings, enums as
 *   numbers because the client asks for `enum-encoding=int`). Here the client sends
 *   `Authorization: Bearer <self-signed JWT>`; when a service account is registered the stand-in
 *   checks that JWT's RS256 signature with the account's public key, like Google does.
 *
 * Keys are real: RSA PKCS#1 v1.5 signatures with `privateEncrypt` over DigestInfo||digest, RSA
 * PSS (RSA_SIGN_PSS_*_SHA256: salt = digest length, as Cloud KMS) with src/kms/pss.ts, ECDSA
 * P-256 DER signatures with `createP256DigestSigner`. CRC32C fields are computed and checked as
 * Cloud KMS does (a wrong digest_crc32c is INVALID_ARGUMENT). Errors carry real gRPC codes (and,
 * for RESOURCE_EXHAUSTED, an optional google.rpc.RetryInfo detail) on both transports.
 * Every request is recorded in `calls`.
 */
import { signPssDigest } from '../../../src/kms/pss.js';
import { constants, createPublicKey, generateKeyPairSync, privateEncrypt, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protos } from '@google-cloud/kms';
import { crc32c } from '../../../src/kms/crc32c.js';
import { createP256DigestSigner } from '../../../src/kms/ecdsa.js';

const require = createRequire(import.meta.url);
const KMS_PROTOS = path.join(path.dirname(require.resolve('@google-cloud/kms/package.json')), 'build', 'protos');
// google-gax's exports map hides package.json: its main is build/src/index.js.
const GAX_PROTOS = path.join(path.dirname(require.resolve('google-gax')), '..', 'protos');

const ALG = protos.google.cloud.kms.v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm;
export type GcpAlgorithm = keyof typeof ALG & string;

const DIGEST_INFO_SHA256 = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** gRPC status codes by name. */
export const GRPC = grpc.status;
export type GrpcCode = keyof typeof grpc.status;

const HTTP_FOR: Partial<Record<GrpcCode, number>> = {
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 400,
  OUT_OF_RANGE: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  ABORTED: 409,
  RESOURCE_EXHAUSTED: 429,
  CANCELLED: 499,
  INTERNAL: 500,
  UNKNOWN: 500,
  UNIMPLEMENTED: 501,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

export interface StandInKey {
  name: string;
  algorithm: GcpAlgorithm;
  /** Absent for algorithms the stand-in cannot sign with (they still have a public key). */
  privateKey?: KeyObject;
  publicPem: string;
  state: 'ENABLED' | 'DISABLED' | 'DESTROYED';
  /** Principals are not modelled: a denied key answers PERMISSION_DENIED to everything. */
  denied: boolean;
}

export interface Fault {
  code: GrpcCode;
  message?: string;
  /** Adds a google.rpc.RetryInfo detail with this delay. */
  retryDelaySeconds?: number;
  /** How many requests this fault answers (default 1). */
  times?: number;
}

/** Deliberate corruption of the next responses, for the client's integrity checks. */
export interface Tamper {
  signatureCrc32c?: boolean;
  verifiedDigestCrc32c?: boolean;
  pemCrc32c?: boolean;
  /** Answer with this resource name instead of the requested one. */
  name?: string;
  /** Omit pemCrc32c / signatureCrc32c entirely. */
  omitCrc?: boolean;
}

export type Method = 'AsymmetricSign' | 'GetPublicKey';

export interface Call {
  transport: 'grpc' | 'rest';
  method: Method | string;
  name?: string;
  authorization?: string;
  /** The outcome: 'OK' or the gRPC code name. */
  outcome: string;
  at: number;
}

export interface ServiceAccount {
  email: string;
  keyId: string;
  privateKeyPem: string;
  /** The JSON a `keyFilename` points at. */
  json: Record<string, string>;
}

export interface GcpKmsStandIn {
  /** host:port of the gRPC listener. */
  grpcHost: string;
  grpcPort: number;
  /** host:port of the REST listener. */
  restHost: string;
  restPort: number;
  keys: Map<string, StandInKey>;
  calls: Call[];
  /** Add a key version; a fresh key pair is generated for the algorithm. */
  addKey(name: string, algorithm: GcpAlgorithm, opts?: Partial<Pick<StandInKey, 'state' | 'denied'>>): StandInKey;
  /** Queue a fault for a method ('*' for any). */
  fail(method: Method | '*', fault: Fault): void;
  /** Hold the next `times` requests of a method without answering (until close). */
  hang(method: Method | '*', times?: number): void;
  tamper: Tamper;
  /** Create a service account whose self-signed JWTs the REST listener accepts (and requires). */
  addServiceAccount(email?: string): ServiceAccount;
  count(method: Method, transport?: 'grpc' | 'rest'): number;
  close(): Promise<void>;
}

/** A key pair for a Cloud KMS algorithm (only the shapes the tests need). */
function keyPairFor(algorithm: GcpAlgorithm): { privateKey?: KeyObject; publicPem: string } {
  const rsa = /^RSA_(?:SIGN|DECRYPT)_(?:PKCS1|PSS|RAW_PKCS1|OAEP)_(\d{4})/.exec(algorithm);
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  if (rsa) pair = generateKeyPairSync('rsa', { modulusLength: Number(rsa[1]) });
  else if (algorithm.startsWith('EC_SIGN_P256')) pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  else if (algorithm.startsWith('EC_SIGN_P384')) pair = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  else if (algorithm === 'EC_SIGN_SECP256K1_SHA256') pair = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  else if (algorithm === 'EC_SIGN_ED25519') pair = generateKeyPairSync('ed25519');
  else throw new Error(`stand-in: no key pair for ${algorithm}`);
  return { privateKey: pair.privateKey, publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

function signDigest(key: StandInKey, digest: Buffer): Buffer {
  if (!key.privateKey) throw new Error('no private key');
  if (/^RSA_SIGN_PKCS1_\d+_SHA256$/.test(key.algorithm)) {
    return privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO_SHA256, digest]));
  }
  if (/^RSA_SIGN_PSS_\d+_SHA256$/.test(key.algorithm)) return signPssDigest(key.privateKey, digest); // salt = digest length
  if (key.algorithm === 'EC_SIGN_P256_SHA256') return createP256DigestSigner(key.privateKey)(digest);
  throw new Error(`stand-in cannot sign with ${key.algorithm}`);
}

// --- minimal protobuf encoding for google.rpc.Status { code, message, details: [Any(RetryInfo)] } ---
function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
const field = (no: number, wire: number, body: Buffer): Buffer =>
  wire === 0 ? Buffer.concat([varint((no << 3) | 0), body]) : Buffer.concat([varint((no << 3) | 2), varint(body.length), body]);
function statusDetailsBin(code: number, message: string, retryDelaySeconds: number): Buffer {
  const duration = field(1, 0, varint(retryDelaySeconds));
  const retryInfo = field(1, 2, duration);
  const any = Buffer.concat([field(1, 2, Buffer.from('type.googleapis.com/google.rpc.RetryInfo')), field(2, 2, retryInfo)]);
  return Buffer.concat([field(1, 0, varint(code)), field(2, 2, Buffer.from(message)), field(3, 2, any)]);
}

class RpcError extends Error {
  constructor(
    readonly code: GrpcCode,
    message: string,
    readonly retryDelaySeconds?: number,
  ) {
    super(message);
  }
}

function b64urlJson(s: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export async function startGcpKmsStandIn(): Promise<GcpKmsStandIn> {
  const keys = new Map<string, StandInKey>();
  const calls: Call[] = [];
  const faults: { method: Method | '*'; fault: Fault; left: number }[] = [];
  const hangs: { method: Method | '*'; left: number }[] = [];
  const hung: (() => void)[] = [];
  const accounts = new Map<string, KeyObject>(); // keyId -> public key
  const tamper: Tamper = {};

  /** Common front half: faults and hangs. Returns false when the request must hang. */
  function injected(method: Method): { hang: boolean } {
    const h = hangs.find((x) => (x.method === method || x.method === '*') && x.left > 0);
    if (h) {
      h.left--;
      return { hang: true };
    }
    const f = faults.find((x) => (x.method === method || x.method === '*') && x.left > 0);
    if (f) {
      f.left--;
      throw new RpcError(f.fault.code, f.fault.message ?? `injected ${f.fault.code}`, f.fault.retryDelaySeconds);
    }
    return { hang: false };
  }

  function lookup(name: string, permission: string): StandInKey {
    const key = keys.get(name);
    // A caller with rights on the key ring learns that a version does not exist; Cloud KMS answers
    // PERMISSION_DENIED "(or it may not exist)" to a caller without rights, existing key or not.
    if (!key) throw new RpcError('NOT_FOUND', `${name} not found.`);
    if (key.denied) {
      throw new RpcError('PERMISSION_DENIED', `Permission '${permission}' denied on resource '${name}' (or it may not exist).`);
    }
    if (key.state !== 'ENABLED') {
      throw new RpcError('FAILED_PRECONDITION', `${name} is not enabled, current state is: ${key.state}.`);
    }
    return key;
  }

  function getPublicKey(name: string) {
    const key = lookup(name, 'cloudkms.cryptoKeyVersions.viewPublicKey');
    const pem = key.publicPem;
    let crc = crc32c(pem);
    if (tamper.pemCrc32c) crc = (crc + 1) >>> 0;
    return {
      pem,
      algorithm: key.algorithm,
      pemCrc32c: tamper.omitCrc ? null : { value: String(crc) },
      name: tamper.name ?? name,
      protectionLevel: 'SOFTWARE',
    };
  }

  function asymmetricSign(name: string, digest: Buffer | undefined, digestKind: string | undefined, digestCrc: string | undefined) {
    const key = lookup(name, 'cloudkms.cryptoKeyVersions.useToSign');
    if (!digest || digestKind !== 'sha256') {
      throw new RpcError('INVALID_ARGUMENT', `The request digest must be of type sha256 for algorithm ${key.algorithm}.`);
    }
    if (digest.length !== 32) throw new RpcError('INVALID_ARGUMENT', 'Digest length must be 32 bytes.');
    let verified = false;
    if (digestCrc !== undefined) {
      if (Number(digestCrc) !== crc32c(digest)) {
        throw new RpcError('INVALID_ARGUMENT', 'The checksum in field digest_crc32c did not match the data in field digest.');
      }
      verified = true;
    }
    let signature: Buffer;
    try {
      signature = signDigest(key, digest);
    } catch {
      throw new RpcError('FAILED_PRECONDITION', `${key.algorithm} cannot be used for AsymmetricSign in this stand-in.`);
    }
    let crc = crc32c(signature);
    if (tamper.signatureCrc32c) crc = (crc + 1) >>> 0;
    return {
      signature,
      signatureCrc32c: tamper.omitCrc ? null : { value: String(crc) },
      verifiedDigestCrc32c: tamper.verifiedDigestCrc32c ?? verified,
      name: tamper.name ?? name,
      protectionLevel: 'SOFTWARE',
    };
  }

  // ------------------------------------------------------------------------------------- gRPC
  const def = protoLoader.loadSync('google/cloud/kms/v1/service.proto', {
    includeDirs: [KMS_PROTOS, GAX_PROTOS],
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const service = pkg.google.cloud.kms.v1.KeyManagementService.service as grpc.ServiceDefinition;

  function grpcHandler(method: Method, run: (req: any) => unknown): grpc.handleUnaryCall<any, any> {
    return (call, callback) => {
      const rec: Call = {
        transport: 'grpc',
        method,
        name: call.request?.name,
        authorization: call.metadata.get('authorization')[0]?.toString(),
        outcome: 'OK',
        at: Date.now(),
      };
      calls.push(rec);
      try {
        if (injected(method).hang) {
          hung.push(() => callback({ code: grpc.status.UNAVAILABLE, details: 'stand-in closing' }));
          rec.outcome = 'HUNG';
          return;
        }
        callback(null, run(call.request));
      } catch (err) {
        const e = err instanceof RpcError ? err : new RpcError('INTERNAL', String(err));
        rec.outcome = e.code;
        const metadata = new grpc.Metadata();
        if (e.retryDelaySeconds !== undefined) {
          metadata.set('grpc-status-details-bin', statusDetailsBin(grpc.status[e.code], e.message, e.retryDelaySeconds));
        }
        callback({ code: grpc.status[e.code], details: e.message, metadata });
      }
    };
  }

  const unimplemented: grpc.UntypedServiceImplementation = {};
  for (const m of Object.keys(service)) {
    unimplemented[m] = (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED, details: `${m} not in stand-in` });
  }
  const server = new grpc.Server();
  server.addService(service, {
    ...unimplemented,
    GetPublicKey: grpcHandler('GetPublicKey', (req) => getPublicKey(req.name)),
    AsymmetricSign: grpcHandler('AsymmetricSign', (req) =>
      asymmetricSign(req.name, req.digest?.[req.digest?.digest], req.digest?.digest, req.digestCrc32c?.value),
    ),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );

  // ------------------------------------------------------------------------------------- REST
  function checkJwt(auth: string | undefined): void {
    if (accounts.size === 0) return; // no account registered: any (or no) token is accepted
    const m = /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(auth ?? '');
    if (!m) throw new RpcError('UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.');
    const header = b64urlJson(m[1]!);
    const claims = b64urlJson(m[2]!);
    const pub = accounts.get(String(header.kid));
    const ok =
      header.alg === 'RS256' &&
      pub !== undefined &&
      verify('sha256', Buffer.from(`${m[1]}.${m[2]}`), pub, Buffer.from(m[3]!, 'base64url')) &&
      claims.iss === claims.sub &&
      typeof claims.exp === 'number' &&
      claims.exp * 1000 > Date.now();
    if (!ok) throw new RpcError('UNAUTHENTICATED', 'Request had invalid authentication credentials.');
  }

  async function restHandler(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const p = decodeURIComponent(url.pathname);
    let method: Method | undefined;
    let name: string | undefined;
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && (m = /^\/v1\/(projects\/.+)\/publicKey$/.exec(p))) {
      method = 'GetPublicKey';
      name = m[1];
    } else if (req.method === 'POST' && (m = /^\/v1\/(projects\/.+):asymmetricSign$/.exec(p))) {
      method = 'AsymmetricSign';
      name = m[1];
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rec: Call = {
      transport: 'rest',
      method: method ?? `${req.method} ${p}`,
      name,
      authorization: req.headers.authorization,
      outcome: 'OK',
      at: Date.now(),
    };
    calls.push(rec);
    const numericEnums = /enum-encoding=int/.test(url.search);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(body));
    };
    try {
      if (!method || !name) throw new RpcError('UNIMPLEMENTED', `no route for ${req.method} ${p}`);
      checkJwt(req.headers.authorization);
      if (injected(method).hang) {
        rec.outcome = 'HUNG';
        hung.push(() => res.destroy());
        return;
      }
      const alg = (a: GcpAlgorithm) => (numericEnums ? ALG[a] : a);
      const level = numericEnums ? 1 : 'SOFTWARE';
      if (method === 'GetPublicKey') {
        const r = getPublicKey(name);
        send(200, { pem: r.pem, algorithm: alg(r.algorithm), ...(r.pemCrc32c ? { pemCrc32c: r.pemCrc32c.value } : {}), name: r.name, protectionLevel: level });
      } else {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
          digest?: Record<string, string>;
          digestCrc32c?: string;
        };
        const kind = body.digest ? Object.keys(body.digest)[0] : undefined;
        const digest = kind ? Buffer.from(body.digest![kind]!, 'base64') : undefined;
        const r = asymmetricSign(name, digest, kind, body.digestCrc32c);
        send(200, {
          signature: r.signature.toString('base64'),
          ...(r.signatureCrc32c ? { signatureCrc32c: r.signatureCrc32c.value } : {}),
          verifiedDigestCrc32c: r.verifiedDigestCrc32c,
          name: r.name,
          protectionLevel: level,
        });
      }
    } catch (err) {
      const e = err instanceof RpcError ? err : new RpcError('INTERNAL', String(err));
      rec.outcome = e.code;
      const details =
        e.retryDelaySeconds !== undefined ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${e.retryDelaySeconds}s` }] : undefined;
      send(HTTP_FOR[e.code] ?? 500, { error: { code: HTTP_FOR[e.code] ?? 500, message: e.message, status: e.code, ...(details ? { details } : {}) } });
    }
  }

  const http: Server = createServer((req, res) => {
    restHandler(req, res).catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const restPort = (http.address() as AddressInfo).port;

  return {
    grpcHost: '127.0.0.1',
    grpcPort,
    restHost: '127.0.0.1',
    restPort,
    keys,
    calls,
    tamper,
    addKey(name, algorithm, opts = {}) {
      const pair = keyPairFor(algorithm);
      const key: StandInKey = { name, algorithm, ...pair, state: opts.state ?? 'ENABLED', denied: opts.denied ?? false };
      keys.set(name, key);
      return key;
    },
    fail(method, fault) {
      faults.push({ method, fault, left: fault.times ?? 1 });
    },
    hang(method, times = 1) {
      hangs.push({ method, left: times });
    },
    addServiceAccount(email = 'signer@test-project.iam.gserviceaccount.com') {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const keyId = `k${accounts.size + 1}${Date.now().toString(16)}`;
      accounts.set(keyId, publicKey);
      const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      return {
        email,
        keyId,
        privateKeyPem,
        json: {
          type: 'service_account',
          project_id: 'test-project',
          private_key_id: keyId,
          private_key: privateKeyPem,
          client_email: email,
          client_id: '1234567890',
          // Never contacted: with a custom endpoint the client signs its own JWTs (no token exchange).
          token_uri: 'http://127.0.0.1:9/token',
        },
      };
    },
    count(method, transport) {
      return calls.filter((c) => c.method === method && (!transport || c.transport === transport)).length;
    },
    async close() {
      for (const h of hung.splice(0)) h();
      server.forceShutdown();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** The public key of a stand-in key as a KeyObject. */
export const publicKeyOf = (k: StandInKey): KeyObject => createPublicKey(k.publicPem);
