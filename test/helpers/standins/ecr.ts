/**
 * A local Amazon ECR API stand-in for the real `@aws-sdk/client-ecr`: the AWS JSON 1.1 protocol
 * (`POST /`, `Content-Type: application/x-amz-json-1.1`,
 * `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken`), answering
 * `{"authorizationData":[{"authorizationToken": base64("AWS:<password>"), "expiresAt": <epoch s>,
 * "proxyEndpoint": "https://<account>.dkr.ecr.<region>.amazonaws.com"}]}` as ECR does.
 *
 * - The SigV4 `Authorization` header must name the stand-in's access key id (the signature is not
 *   recomputed); otherwise `UnrecognizedClientException` (HTTP 400), as AWS answers.
 * - `password` is what the next token carries (set it to rotate); `ttlSeconds` its lifetime.
 * - `fail()` queues faults (`__type` + status, extra headers, or `dripMs`: a 200 whose body drips a
 *   byte every dripMs for ever) for the next calls. Listens on 127.0.0.1 only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const ECR_TARGET = 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken';

export interface EcrFault {
  type: string;
  status: number;
  message?: string;
  headers?: Record<string, string>;
  dripMs?: number;
}

export interface EcrStandIn {
  url: string;
  region: string;
  accountId: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The password the next authorization token carries. */
  password: string;
  /** Lifetime of issued tokens (ECR: 12 hours). */
  ttlSeconds: number;
  /** GetAuthorizationToken calls answered with a token. */
  issued: number;
  /** Every request: its target and whether it was refused. */
  requests: { target: string; ok: boolean }[];
  fail(fault: EcrFault, times?: number): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startEcrStandIn(opts: {
  password: string;
  ttlSeconds?: number;
  region?: string;
  accountId?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}): Promise<EcrStandIn> {
  const faults: (EcrFault & { times: number })[] = [];
  const s: EcrStandIn = {
    url: '',
    region: opts.region ?? 'eu-west-1',
    accountId: opts.accountId ?? '123456789012',
    accessKeyId: opts.accessKeyId ?? 'AKIASIGNETTESTKEY001',
    secretAccessKey: opts.secretAccessKey ?? 'signet-test-secret-access-key',
    password: opts.password,
    ttlSeconds: opts.ttlSeconds ?? 12 * 3600,
    issued: 0,
    requests: [],
    fail(fault, times = 1) {
      faults.push({ ...fault, times });
    },
    close: async () => undefined,
  };
  const reply = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': `req-${Date.now()}`, ...headers });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      await readBody(req);
      const target = String(req.headers['x-amz-target'] ?? '');
      if (req.method !== 'POST' || req.url !== '/') {
        s.requests.push({ target, ok: false });
        reply(res, 404, { __type: 'UnknownOperationException' });
        return;
      }
      if (!String(req.headers.authorization ?? '').includes(`Credential=${s.accessKeyId}/`)) {
        s.requests.push({ target, ok: false });
        reply(res, 400, { __type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' });
        return;
      }
      const fault = faults.find((f) => f.times > 0);
      if (fault) {
        fault.times--;
        s.requests.push({ target, ok: false });
        if (fault.dripMs) {
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
          const t = setInterval(() => res.write(' '), fault.dripMs);
          res.on('close', () => clearInterval(t));
          return;
        }
        reply(res, fault.status, { __type: fault.type, message: fault.message ?? 'injected fault' }, fault.headers);
        return;
      }
      if (target !== ECR_TARGET) {
        s.requests.push({ target, ok: false });
        reply(res, 400, { __type: 'UnknownOperationException' });
        return;
      }
      s.issued++;
      s.requests.push({ target, ok: true });
      reply(res, 200, {
        authorizationData: [
          {
            authorizationToken: Buffer.from(`AWS:${s.password}`).toString('base64'),
            expiresAt: Math.floor(Date.now() / 1000) + s.ttlSeconds,
            proxyEndpoint: `https://${s.accountId}.dkr.ecr.${s.region}.amazonaws.com`,
          },
        ],
      });
    })().catch((err) => {
      res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return s;
}
