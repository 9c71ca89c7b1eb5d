/**
 * The receiver's node:http server bounds (src/webhooks/http-server.ts): headers that never finish
 * get 408 and a closed connection; past server.maxConnections new connections are closed on
 * arrival (and counted) while the open ones keep working; the default cap follows the open-files
 * limit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultMaxConnections } from '../../../src/webhooks/http-server.js';
import { startReceiver, type ReceiverHarness } from '../../helpers/receiver-harness.js';

const SECRET = 'server-secret-0123456789';

function open(url: string): Promise<Socket> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}
const closed = (s: Socket): Promise<string> =>
  new Promise((resolve) => {
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(text));
  });

describe('receiver server bounds', () => {
  let r: ReceiverHarness;
  beforeAll(async () => {
    r = await startReceiver({
      registries: [{ host: 'registry.example.com' }],
      integrations: [{ name: 'dist', kind: 'distribution', secret: SECRET }],
      server: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, maxConnections: 16 },
    });
  });
  afterAll(() => r.close());

  it('headers that never finish: 408 and the connection closed', async () => {
    const s = await open(r.url);
    s.write('POST /hooks/dist HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const text = await closed(s);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('past maxConnections a new connection is closed on arrival and counted; the open ones still answer', async () => {
    const held = await Promise.all(Array.from({ length: 16 }, () => open(r.url)));
    const extra = await open(r.url);
    expect(await closed(extra)).toBe('');
    const dropped = (await r.metrics.httpConnectionsDropped.get()).values[0]?.value;
    expect(dropped).toBe(1);
    // one of the held connections is still served
    held[0]!.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(await closed(held[0]!)).toMatch(/^HTTP\/1\.1 200 /);
    for (const s of held) s.destroy();
  });

  it('the default cap is the open-files limit less 256 (at least 64)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'signet-limits-'));
    try {
      const file = path.join(dir, 'limits');
      writeFileSync(
        file,
        'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n',
      );
      expect(defaultMaxConnections(file)).toBe(768);
      writeFileSync(file, 'Max open files            100                  100                  files\n');
      expect(defaultMaxConnections(file)).toBe(64);
      expect(defaultMaxConnections(path.join(dir, 'absent'))).toBe(4096);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
