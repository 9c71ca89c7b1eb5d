/**
 * POST /hooks/:integration is served on plain node:http, not by express: what express used to
 * give it (routing, body limit, content encodings, JSON answers) still holds, and every other
 * route still reaches the express app.
 */
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const SECRET = 'route-secret-0123456789';
const body = readFileSync(new URL('../../fixtures/webhooks/distribution-push.json', import.meta.url), 'utf8');
const auth = { authorization: `Bearer ${SECRET}` };
const LIMIT = 1024 * 1024;

/** A POST whose body is written in chunks without a content-length (chunked transfer encoding). */
function postChunked(url: string, chunks: Buffer[], headers: Record<string, string>): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('the hook route on plain node:http', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({ registries: [{ host: 'registry.example.com' }], integrations: [{ name: 'dist', kind: 'distribution', secret: SECRET }] });
  });
  afterAll(() => r.close());

  it('answers JSON with its length, and the request id it was given', async () => {
    const res = await fetch(`${r.url}/hooks/dist`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'x-request-id': 'req-1' }, body });
    const text = await res.text();
    expect(res.status).toBe(202);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    expect(JSON.parse(text)).toEqual({
      requestId: 'req-1',
      queued: [{ ref: expect.stringContaining('registry.example.com/team-a/api:v1.2.3@sha256:'), job: expect.any(String) }],
      ignored: [],
    });
  });

  it('unknown integration: 404; other methods and paths are left to the express app', async () => {
    const unknown = await r.post('nosuch', JSON.parse(body), { headers: auth });
    expect(unknown).toEqual({ status: 404, json: { error: 'unknown integration' } });
    expect((await fetch(`${r.url}/hooks/dist`)).status).toBe(404);
    expect((await fetch(`${r.url}/hooks/dist/more`, { method: 'POST', headers: auth, body })).status).toBe(404);
    const health = await fetch(`${r.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
  });

  it('matches the path as express did: a trailing slash, any case, an encoded name, a query string', async () => {
    for (const path of ['/hooks/dist/', '/HOOKS/dist', '/hooks/%64ist', `/hooks/dist?token=${SECRET}`]) {
      const res = await fetch(`${r.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(path.includes('token') ? {} : auth) },
        body,
      });
      expect(res.status, path).toBe(202);
    }
  });

  it('413 for a body over the limit, declared or streamed without a content-length; counted as malformed', async () => {
    const before = await r.count('dist', 'malformed');
    const declared = await r.post('dist', `{"events":[],"pad":"${'x'.repeat(LIMIT)}"}`, { raw: true, headers: auth });
    expect(declared).toEqual({ status: 413, json: { error: `body larger than ${LIMIT} bytes` } });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const streamed = await postChunked(`${r.url}/hooks/dist`, Array(Math.ceil(LIMIT / chunk.length) + 2).fill(chunk), auth);
    expect(streamed).toEqual({ status: 413, json: { error: `body larger than ${LIMIT} bytes` } });
    expect(await r.count('dist', 'malformed')).toBe(before + 2);
    // the connection and the receiver are fine afterwards
    expect((await r.post('dist', JSON.parse(body), { headers: auth })).status).toBe(202);
  });

  it('a body streamed in chunks under the limit is read whole', async () => {
    const bytes = Buffer.from(body);
    const res = await postChunked(`${r.url}/hooks/dist`, [bytes.subarray(0, 100), bytes.subarray(100, 1000), bytes.subarray(1000)], auth);
    expect(res.status).toBe(202);
  });

  it('gzip and deflate bodies are decoded (the limit applies to the decoded size); other encodings get 415', async () => {
    const gz = await fetch(`${r.url}/hooks/dist`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(body),
    });
    expect(gz.status).toBe(202);
    const bomb = gzipSync(Buffer.alloc(LIMIT + 1, 0x20));
    const big = await fetch(`${r.url}/hooks/dist`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: bomb,
    });
    expect(big.status).toBe(413);
    const broken = await fetch(`${r.url}/hooks/dist`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: 'not gzip',
    });
    expect(broken.status).toBe(400);
    for (const encoding of ['compress', 'gzip, br', 'constructor', '__proto__']) {
      const odd = await fetch(`${r.url}/hooks/dist`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'content-encoding': encoding },
        body,
      });
      expect(odd.status, encoding).toBe(415);
      expect(await odd.json()).toEqual({ error: `unsupported content encoding "${encoding}"` });
    }
  });

  it('a sender that goes away mid-body leaves the receiver answering', async () => {
    await new Promise<void>((resolve) => {
      const req = request(`${r.url}/hooks/dist`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-length': '5000' } });
      req.on('error', () => resolve());
      req.write('{"events": [');
      setTimeout(() => req.destroy(), 50);
    });
    expect((await r.post('dist', JSON.parse(body), { headers: auth })).status).toBe(202);
  });
});
