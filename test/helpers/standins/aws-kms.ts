/**
 * A local AWS KMS stand-in for the real `@aws-sdk/client-kms`: the AWS JSON 1.1 protocol
 * (`POST /`, `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target: TrentService.<Op>`,
 * bytes as base64, errors as `{"__type": "...Exception", "message": ...}`), answering Sign and
 * GetPublicKey with real keys generated per test.
 *
 * - Keys are found by key id, key ARN, alias name (`alias/x`) or alias ARN, like KMS.
 * - Sign checks what KMS checks: MessageType DIGEST with a 32-byte message for *_SHA_256, a
 *   signing algorithm the key supports, key usage SIGN_VERIFY, key state. RSA PKCS#1 v1.5 is
 *   `privateEncrypt` over DigestInfo||digest, ECDSA is DER from src/kms/ecdsa.ts (prehashed).
 * - The SigV4 `Authorization` header must name the stand-in's access key id (the signature
 *   itself is not recomputed); otherwise UnrecognizedClientException, as AWS answers.
 * - `fail()` queues faults (any `__type`, status, headers, delay, or a raw non-JSON body) for
 *   the next calls of an operation; `calls` counts requests per operation.
 * Listens on 127.0.0.1 only.
 */
import { constants, createPublicKey, generateKeyPairSync, privateEncrypt, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createP256DigestSigner } from '../../../src/kms/ecdsa.js';
import { signPssDigest } from '../../../src/kms/pss.js';

const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export type AwsKeySpec = 'RSA_2048' | 'RSA_3072' | 'RSA_4096' | 'ECC_NIST_P256' | 'ECC_NIST_P384' | 'ECC_SECG_P256K1' | 'SYMMETRIC_DEFAULT' | 'HMAC_256';

export interface AwsStandinKey {
  keyId: string;
  arn: string;
  aliases: string[];
  keySpec: AwsKeySpec;
  keyUsage: string;
  signingAlgorithms: string[];
  /** Enabled | Disabled | PendingDeletion | PendingImport | Unavailable */
  state: string;
  privateKey?: KeyObject;
  publicKey?: KeyObject;
  /** SPKI PEM of the key (undefined for symmetric/HMAC keys). */
  publicKeyPem?: string;
}

export interface AddKeyOptions {
  keySpec?: AwsKeySpec;
  keyUsage?: string;
  signingAlgorithms?: string[];
  alias?: string;
  state?: string;
  /** Bring your own key pair (e.g. to share with another stand-in). */
  privateKey?: KeyObject;
}

export interface AwsFault {
  /** `__type` of the error, e.g. ThrottlingException. */
  type?: string;
  status?: number;
  message?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (for timeout tests). */
  delayMs?: number;
  /** Answer with this body as text/html instead of a JSON error. */
  rawBody?: string;
  /** Close the connection without answering. */
  hangUp?: boolean;
  /** Answer 200 and then drip the body one byte every this many ms, for ever (an overall-deadline test). */
  dripMs?: number;
}

export type AwsOp = 'Sign' | 'GetPublicKey' | 'DescribeKey';

export interface AwsKmsStandin {
  url: string;
  port: number;
  region: string;
  accountId: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Requests per operation (any X-Amz-Target, including unknown ones). */
  calls: Record<string, number>;
  /** Every request's target and parsed body, in order. */
  requests: { target: string; body: Record<string, unknown>; authorization: string | undefined }[];
  /** Server-side handling time per Sign, in ms (parsing + signing + answering). */
  signTimesMs: number[];
  keys: AwsStandinKey[];
  addKey(opts?: AddKeyOptions): AwsStandinKey;
  /** The next `times` calls of `op` (or any op with '*') answer with `fault`. */
  fail(op: AwsOp | '*', fault: AwsFault, times?: number): void;
  reset(): void;
  close(): Promise<void>;
}

function generate(spec: AwsKeySpec): KeyObject | undefined {
  switch (spec) {
    case 'RSA_2048':
    case 'RSA_3072':
    case 'RSA_4096':
      return generateKeyPairSync('rsa', { modulusLength: Number(spec.slice(4)) }).privateKey;
    case 'ECC_NIST_P256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ECC_NIST_P384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'ECC_SECG_P256K1':
      return generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
    default:
      return undefined;
  }
}

function defaultAlgorithms(spec: AwsKeySpec): string[] {
  if (spec.startsWith('RSA_')) {
    return [
      'RSASSA_PKCS1_V1_5_SHA_256',
      'RSASSA_PKCS1_V1_5_SHA_384',
      'RSASSA_PKCS1_V1_5_SHA_512',
      'RSASSA_PSS_SHA_256',
      'RSASSA_PSS_SHA_384',
      'RSASSA_PSS_SHA_512',
    ];
  }
  if (spec === 'ECC_NIST_P256' || spec === 'ECC_SECG_P256K1') return ['ECDSA_SHA_256'];
  if (spec === 'ECC_NIST_P384') return ['ECDSA_SHA_384'];
  return [];
}

export async function startAwsKmsStandin(opts: { region?: string; accountId?: string; accessKeyId?: string } = {}): Promise<AwsKmsStandin> {
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? '111122223333';
  const accessKeyId = opts.accessKeyId ?? 'AKIASTANDIN000000001';
  const secretAccessKey = 'standin-secret-access-key-do-not-log';
  const keys: AwsStandinKey[] = [];
  const faults: { op: AwsOp | '*'; fault: AwsFault; left: number }[] = [];
  const calls: Record<string, number> = {};
  const requests: AwsKmsStandin['requests'] = [];
  const signTimesMs: number[] = [];
  const signers = new WeakMap<AwsStandinKey, (d: Buffer) => Buffer>();

  function findKey(id: unknown): AwsStandinKey | undefined {
    if (typeof id !== 'string') return undefined;
    const aliasArn = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(alias\/.+)$/.exec(id);
    const name = aliasArn ? aliasArn[1] : id;
    return keys.find((k) => k.keyId === name || k.arn === name || k.aliases.includes(name!));
  }

  const requestId = () => randomUUID();

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'x-amzn-requestid': requestId(),
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  function error(res: ServerResponse, type: string, message: string, status = 400, headers: Record<string, string> = {}): void {
    send(res, status, { __type: type, message }, headers);
  }

  function checkState(res: ServerResponse, key: AwsStandinKey): boolean {
    if (key.state === 'Enabled') return true;
    if (key.state === 'Disabled') error(res, 'DisabledException', `${key.arn} is disabled.`);
    else if (key.state === 'Unavailable') error(res, 'KeyUnavailableException', `${key.arn} is unavailable.`, 500);
    else error(res, 'KMSInvalidStateException', `${key.arn} is pending ${key.state === 'PendingDeletion' ? 'deletion' : 'import'}.`);
    return false;
  }

  function handle(target: string, body: Record<string, unknown>, res: ServerResponse): void {
    const op = target.replace(/^TrentService\./, '');
    if (op === 'GetPublicKey' || op === 'DescribeKey') {
      const key = findKey(body.KeyId);
      if (!key) return error(res, 'NotFoundException', `Key '${String(body.KeyId)}' does not exist`);
      if (op === 'DescribeKey') {
        return send(res, 200, {
          KeyMetadata: {
            AWSAccountId: accountId,
            Arn: key.arn,
            KeyId: key.keyId,
            KeySpec: key.keySpec,
            CustomerMasterKeySpec: key.keySpec,
            KeyUsage: key.keyUsage,
            KeyState: key.state,
            Enabled: key.state === 'Enabled',
            SigningAlgorithms: key.keyUsage === 'SIGN_VERIFY' ? key.signingAlgorithms : undefined,
          },
        });
      }
      if (!checkState(res, key)) return;
      if (!key.publicKey) return error(res, 'UnsupportedOperationException', `${key.arn} key usage is ${key.keyUsage} which is not valid for GetPublicKey.`);
      return send(res, 200, {
        KeyId: key.arn,
        PublicKey: key.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
        KeySpec: key.keySpec,
        CustomerMasterKeySpec: key.keySpec,
        KeyUsage: key.keyUsage,
        ...(key.keyUsage === 'SIGN_VERIFY' ? { SigningAlgorithms: key.signingAlgorithms } : {}),
        ...(key.keyUsage === 'ENCRYPT_DECRYPT' ? { EncryptionAlgorithms: ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'] } : {}),
      });
    }
    if (op === 'Sign') {
      const t0 = performance.now();
      const key = findKey(body.KeyId);
      if (!key) return error(res, 'NotFoundException', `Key '${String(body.KeyId)}' does not exist`);
      if (!checkState(res, key)) return;
      const alg = String(body.SigningAlgorithm ?? '');
      if (key.keyUsage !== 'SIGN_VERIFY' || !key.privateKey) {
        return error(res, 'InvalidKeyUsageException', `${key.arn} key usage is ${key.keyUsage} which is not valid for Sign.`);
      }
      if (!key.signingAlgorithms.includes(alg)) {
        return error(res, 'InvalidKeyUsageException', `Signing algorithm ${alg} is not valid for ${key.arn}.`);
      }
      if (body.MessageType !== 'DIGEST') {
        // What the SDK would do with MessageType RAW (or unset): KMS hashes the message again.
        return error(res, 'ValidationException', `stand-in only signs digests (MessageType ${String(body.MessageType)})`);
      }
      const digest = Buffer.from(String(body.Message ?? ''), 'base64');
      if (!alg.endsWith('_SHA_256') || digest.length !== 32) {
        return error(res, 'ValidationException', `Digest is invalid length for algorithm ${alg}.`);
      }
      let sig: Buffer;
      if (alg === 'RSASSA_PKCS1_V1_5_SHA_256') {
        sig = privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
      } else if (alg === 'RSASSA_PSS_SHA_256') {
        // AWS KMS: MGF1 with SHA-256 and a 256-bit salt
        sig = signPssDigest(key.privateKey, digest);
      } else if (alg === 'ECDSA_SHA_256' && key.keySpec === 'ECC_NIST_P256') {
        let signer = signers.get(key);
        if (!signer) {
          signer = createP256DigestSigner(key.privateKey);
          signers.set(key, signer);
        }
        sig = signer(digest);
      } else {
        return error(res, 'ValidationException', `stand-in cannot sign with ${alg} on ${key.keySpec}`);
      }
      send(res, 200, { KeyId: key.arn, Signature: sig.toString('base64'), SigningAlgorithm: alg });
      signTimesMs.push(performance.now() - t0);
      return;
    }
    return error(res, 'UnknownOperationException', `unknown operation ${target}`);
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const target = String(req.headers['x-amz-target'] ?? '');
        const op = target.replace(/^TrentService\./, '');
        calls[op] = (calls[op] ?? 0) + 1;
        let body: Record<string, unknown> = {};
        try {
          body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>) : {};
        } catch {
          return error(res, 'SerializationException', 'body is not JSON');
        }
        const authorization = req.headers.authorization;
        requests.push({ target, body, authorization });
        if (req.method !== 'POST' || req.url !== '/') return error(res, 'UnknownOperationException', `${req.method} ${req.url}`, 404);
        if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) {
          return error(res, 'SerializationException', `content-type ${String(req.headers['content-type'])}`);
        }
        const i = faults.findIndex((f) => f.left > 0 && (f.op === '*' || f.op === op));
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
            res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
            const t = setInterval(() => res.write(' '), fault.dripMs);
            res.on('close', () => clearInterval(t));
            return;
          }
          if (fault.rawBody !== undefined) {
            res.writeHead(fault.status ?? 502, { 'content-type': 'text/html', ...(fault.headers ?? {}) });
            res.end(fault.rawBody);
            return;
          }
          if (fault.type) return error(res, fault.type, fault.message ?? `${fault.type} from stand-in`, fault.status ?? 400, fault.headers ?? {});
        }
        const scope = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/([^/]+)\/kms\/aws4_request,/.exec(String(authorization ?? ''));
        if (!scope || scope[1] !== accessKeyId) {
          return error(res, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
        }
        if (scope[2] !== region) {
          return error(res, 'InvalidSignatureException', `Credential should be scoped to a valid region, not '${scope[2]}'.`);
        }
        handle(target, body, res);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    region,
    accountId,
    accessKeyId,
    secretAccessKey,
    calls,
    requests,
    signTimesMs,
    keys,
    addKey(o: AddKeyOptions = {}): AwsStandinKey {
      const keySpec = o.keySpec ?? 'ECC_NIST_P256';
      const keyId = randomUUID();
      const privateKey = o.privateKey ?? generate(keySpec);
      const publicKey = privateKey ? createPublicKey(privateKey) : undefined;
      const key: AwsStandinKey = {
        keyId,
        arn: `arn:aws:kms:${region}:${accountId}:key/${keyId}`,
        aliases: o.alias ? [o.alias.startsWith('alias/') ? o.alias : `alias/${o.alias}`] : [],
        keySpec,
        keyUsage: o.keyUsage ?? (privateKey ? 'SIGN_VERIFY' : 'ENCRYPT_DECRYPT'),
        signingAlgorithms: o.signingAlgorithms ?? defaultAlgorithms(keySpec),
        state: o.state ?? 'Enabled',
        ...(privateKey ? { privateKey } : {}),
        ...(publicKey ? { publicKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string } : {}),
      };
      keys.push(key);
      return key;
    },
    fail(op, fault, times = 1) {
      faults.push({ op, fault, left: times });
    },
    reset() {
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
