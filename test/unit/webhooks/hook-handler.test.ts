/**
 * The hook handler's bounds, over real sockets: a call whose credential is a header or a query
 * token is answered before any byte of its body is sent; a body past the deadline or under the
 * minimum rate gets 408 and its connection is closed; a kind that signs the body reads at most
 * server.maxPreAuthBodies bodies at once (503 past it, unless the body has arrived whole), and a
 * declared body over the limit is refused unread.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const SECRET = 'handler-secret-0123456789';
const dist = readFileSync(new URL('../../fixtures/webhooks/distribution-push.json', import.meta.url), 'utf8');
const gh = readFileSync(new URL('../../fixtures/webhooks/github-package-published.json', import.meta.url), 'utf8');
const sign = (b: string): string => `sha256=${createHmac('sha256', SECRET).update(b).digest('hex')}`;

interface Raw {
  socket: Socket;
  /** The whole answer received, once the server closed the connection. */
  answer: Promise<{ status: number; text: string; closedByServer: boolean }>;
}

/** A raw HTTP/1.1 request: its head now, the body bytes as the test writes them. */
function rawRequest(url: string, path: string, headers: Record<string, string | number>): Raw {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => undefined);
  const head = Object.entries({ host: '127.0.0.1', 'content-type': 'application/json', ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
  let text = '';
  socket.on('data', (d) => (text += d.toString('latin1')));
  const answer = new Promise<{ status: number; text: string; closedByServer: boolean }>((resolve) => {
    socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text, closedByServer: true }));
  });
  return { socket, answer };
}

describe('authentication before the body', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({ registries: [{ host: 'registry.example.com' }], integrations: [{ name: 'dist', kind: 'distribution', secret: SECRET }] });
  });
  afterAll(() => r.close());

  it('a wrong or missing secret is answered 401 with connection: close before any byte of the body is sent', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-secret-0123456789' }] as Record<string, string>[]) {
      const req = rawRequest(r.url, '/hooks/dist', { ...headers, 'content-length': 1_000_000 });
      const a = await req.answer; // no body byte is ever written
      expect(a.status).toBe(401);
      expect(a.text.toLowerCase()).toContain('connection: close');
      expect(a.closedByServer).toBe(true);
    }
    const unknown = await rawRequest(r.url, '/hooks/nosuch', { 'content-length': 1_000_000 }).answer;
    expect(unknown.status).toBe(404);
    expect(await r.rejected('dist', 'unauthorized')).toBe(2);
    expect(await r.count('dist', 'unauthorized')).toBe(2);
  });
});

describe('body deadline and minimum rate', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'registry.example.com' }],
      integrations: [{ name: 'dist', kind: 'distribution', secret: SECRET }],
      server: { bodyTimeoutMs: 1500, minBodyBytesPerSecond: 0 },
    });
  });
  afterAll(() => r.close());

  it('an authenticated body not received whole in time gets 408 and its connection is closed', async () => {
    const req = rawRequest(r.url, '/hooks/dist', { authorization: `Bearer ${SECRET}`, 'content-length': dist.length });
    req.socket.write(dist.slice(0, 100)); // and nothing more
    const a = await req.answer;
    expect(a.status).toBe(408);
    expect(a.text).toContain('body not received within 1500 ms');
    expect(await r.rejected('dist', 'body_timeout')).toBe(1);
    // draining a body over the limit ends at the deadline too
    const big = rawRequest(r.url, '/hooks/dist', { authorization: `Bearer ${SECRET}`, 'transfer-encoding': 'chunked' });
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    for (let i = 0; i < 5; i++) big.socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString('latin1')}\r\n`);
    const b = await big.answer; // over 1 MiB: read off until the deadline, then 413 and closed
    expect(b.status).toBe(413);
    expect(b.closedByServer).toBe(true);
    expect((await r.post('dist', JSON.parse(dist), { headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(202);
  });
});

describe('a body trickled under the minimum rate', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'registry.example.com' }],
      integrations: [{ name: 'dist', kind: 'distribution', secret: SECRET }],
      server: { bodyTimeoutMs: 60_000, minBodyBytesPerSecond: 1000 },
    });
  });
  afterAll(() => r.close());

  it('gets 408 after the first second, and its connection is closed', async () => {
    const req = rawRequest(r.url, '/hooks/dist', { authorization: `Bearer ${SECRET}`, 'content-length': dist.length });
    let sent = 0;
    const timer = setInterval(() => req.socket.writable && sent < dist.length && req.socket.write(dist.slice(sent, (sent += 10))), 100);
    const a = await req.answer;
    clearInterval(timer);
    expect(a.status).toBe(408);
    expect(a.text).toContain('body arriving slower than 1000 bytes/s');
    expect(await r.rejected('dist', 'too_slow')).toBe(1);
  });
});

describe('a kind that signs the body (github)', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'ghcr.io' }],
      integrations: [{ name: 'gh', kind: 'github', secret: SECRET }],
      server: { maxPreAuthBodies: 1, bodyTimeoutMs: 3000, minBodyBytesPerSecond: 0 },
    });
  });
  afterAll(() => r.close());

  it('without a well-formed signature: 401 before the body; a declared body over the limit: 413 unread', async () => {
    const none = await rawRequest(r.url, '/hooks/gh', { 'content-length': 1_000_000, 'x-github-event': 'package' }).answer;
    expect(none.status).toBe(401);
    const malformed = await rawRequest(r.url, '/hooks/gh', { 'content-length': 1_000_000, 'x-hub-signature-256': 'sha256=nothex' }).answer;
    expect(malformed.status).toBe(401);
    const big = await rawRequest(r.url, '/hooks/gh', { 'content-length': 2_000_000, 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` }).answer;
    expect(big.status).toBe(413);
    expect(await r.rejected('gh', 'body_too_large')).toBe(1);
  });

  it('reads one body at a time before authentication: the next gets 503 + Retry-After unread, unless its body has arrived whole', async () => {
    const forged = { 'x-hub-signature-256': `sha256=${'0'.repeat(64)}`, 'x-github-event': 'package' };
    const holder = rawRequest(r.url, '/hooks/gh', { ...forged, 'content-length': 10_000 });
    holder.socket.write('{"a":');
    await new Promise((res) => setTimeout(res, 200));
    const busy = await rawRequest(r.url, '/hooks/gh', { ...forged, 'content-length': 10_000 }).answer;
    expect(busy.status).toBe(503);
    expect(busy.text.toLowerCase()).toContain('retry-after: 1');
    expect(await r.rejected('gh', 'preauth_busy')).toBe(1);
    // a real delivery (headers and body in one write) is still checked while the slot is taken
    const ok = await r.post('gh', gh, { raw: true, headers: { 'x-github-event': 'package', 'x-hub-signature-256': sign(gh) } });
    expect(ok.status).toBe(202);
    // the holder's slot ends with its deadline (408), and the next body is read again
    expect((await holder.answer).status).toBe(408);
    const wrong = await r.post('gh', gh, { raw: true, headers: forged });
    expect(wrong.status).toBe(401);
  });
});

describe('malformed JSON', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({ registries: [{ host: 'registry.example.com' }], integrations: [{ name: 'dist', kind: 'distribution', secret: SECRET }] });
  });
  afterAll(() => r.close());

  it('is answered 400 and logged at warn with the request id and integration, never the body', async () => {
    const body = '{"events": [ "secret-looking-body-text" ';
    const res = await r.post('dist', body, { raw: true, headers: { authorization: `Bearer ${SECRET}`, 'x-request-id': 'req-malformed-1' } });
    expect(res.status).toBe(400);
    const line = r.logs.find((l) => l.msg === 'webhook body is not valid JSON: answered 400');
    expect(line).toMatchObject({ level: 40, requestId: 'req-malformed-1', integration: 'dist', bytes: body.length });
    expect(JSON.stringify(r.logs)).not.toContain('secret-looking-body-text');
    expect(await r.count('dist', 'malformed')).toBe(1);
  });
});
