/**
 * Pre-authentication exhaustion (issue 14, item 1) against the receiver as operators run it
 * (`signet serve`, its own process, so its RSS is its own, under an open-files limit of 1,024):
 * 1,000 anonymous connections at once,
 * each sending its headers (Content-Length near 1 MiB) and then a trickle of the body (half of
 * them 64 KiB every 500 ms up to 512 KiB, then nothing; half 16 bytes a second), first against a
 * token kind (distribution: refused before any body byte is read), then against a kind that signs
 * the body (github, with a well-formed but forged X-Hub-Signature-256: bounded reads). Meanwhile
 * an authenticated sender posts every 200 ms and /healthz is asked every 500 ms: every webhook
 * must get 202 and every /healthz 200, the server must close every flood connection itself (within
 * one more body deadline after the phase), the
 * receiver's RSS stays under a generous bound (figures printed), the flood shows in
 * signet_webhook_rejected_total, and the warn line is sampled.
 */
import type { ChildProcess } from 'node:child_process';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signetArgv } from '../helpers/cli.js';
import { tempDir } from '../helpers/cosign.js';
import { freePort } from '../helpers/ports.js';
import { killChild, spawnTracked } from '../helpers/proc.js';
import { deletePrefix, REDIS_URL, uniquePrefix, waitFor } from '../helpers/signet.js';

const SECRET = 'flood-secret-0123456789abcdef';
const FLOOD = 1000;
const DECLARED = 1_000_000;
/** Long enough for every bounded read to end (server.bodyTimeoutMs, default 10 s) and then some. */
const PHASE_MS = 13_000;
const RSS_BOUND_MIB = 400;
const FD_LIMIT = 1024;

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/webhooks/${name}`, import.meta.url), 'utf8');
const prefix = uniquePrefix();
let tmp: { dir: string; remove: () => void };
let child: ChildProcess;
let url: string;
let port: number;
let stdout = '';
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  tmp = tempDir();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(tmp.dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
  writeFileSync(
    path.join(tmp.dir, 'signet.yaml'),
    `server: { host: 127.0.0.1, port: ${port} }
redis: { url: "${REDIS_URL}", prefix: ${prefix} }
registries: [{ host: registry.example.com }, { host: ghcr.io }]
integrations:
  - { name: tok, kind: distribution, secret: "${SECRET}" }
  - { name: gh, kind: github, secret: "${SECRET}" }
keys: [{ name: k, provider: file, path: k.pem }]
rules: [{ match: "registry.example.com/**", keys: [k] }, { match: "ghcr.io/**", keys: [k] }]
`,
  );
  const cmd = signetArgv(['serve', '-c', path.join(tmp.dir, 'signet.yaml')]);
  // under the open-files limit of the report (1,024): more flood connections than descriptors
  child = spawnTracked('sh', ['-c', `ulimit -n ${FD_LIMIT} && exec "$0" "$@"`, cmd.bin, ...cmd.args], {
    cwd: tmp.dir,
    env: { ...process.env, SIGNET_CONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stdout += d));
  await waitFor('receiver up', async () => (await fetch(`${url}/healthz`)).ok, 60_000, 200);
  figures.baselineRssMiB = rssMiB(child.pid!);
});

afterAll(async () => {
  if (child) await killChild(child);
  await deletePrefix(prefix);
  tmp?.remove();
  console.info(`receiver flood figures: ${JSON.stringify(figures)}`);
});

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

interface Attacker {
  status?: number;
  /** The server closed the connection (not this test). */
  closedByServer: boolean;
  sent: number;
  end(): void;
}

/** One anonymous connection: headers, then a body that never completes. */
function attacker(path: string, extraHeaders: string, fat: boolean): Attacker {
  const a: Attacker = { closedByServer: false, sent: 0, end: () => undefined };
  const socket: Socket = connect(port, '127.0.0.1');
  let timer: NodeJS.Timeout | undefined;
  let ending = false;
  const send = (n: number): void => {
    if (socket.destroyed || !socket.writable) return;
    socket.write(Buffer.alloc(n, 0x20));
    a.sent += n;
  };
  socket.on('connect', () => {
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${DECLARED}\r\n${extraHeaders}\r\n`);
    timer = fat ? setInterval(() => a.sent < 512 * 1024 && send(64 * 1024), 500) : setInterval(() => send(16), 1000);
  });
  socket.on('data', (d) => {
    a.status ??= Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1]);
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    clearInterval(timer);
    if (!ending) a.closedByServer = true;
  });
  a.end = () => {
    ending = !a.closedByServer;
    clearInterval(timer);
    socket.destroy();
  };
  return a;
}

interface PhaseResult {
  attackers: Attacker[];
  sends: { status: number; ms: number }[];
  health: number[];
  maxRssMiB: number;
}

/** FLOOD attackers on `path` for PHASE_MS while `send` posts every 200 ms and /healthz is asked every 500 ms. */
async function phase(path: string, extraHeaders: string, send: (i: number) => Promise<Response>): Promise<PhaseResult> {
  const result: PhaseResult = { attackers: [], sends: [], health: [], maxRssMiB: 0 };
  const started = Date.now();
  const sampler = setInterval(() => (result.maxRssMiB = Math.max(result.maxRssMiB, rssMiB(child.pid!))), 200);
  // open them in waves of 100 (the listen backlog is 511), all within the first half second
  for (let i = 0; i < FLOOD; i += 100) {
    for (let j = i; j < i + 100; j++) result.attackers.push(attacker(path, extraHeaders, j % 2 === 0));
    await new Promise((r) => setTimeout(r, 40));
  }
  const senders = (async () => {
    for (let i = 0; Date.now() - started < PHASE_MS; i++) {
      const t0 = performance.now();
      let status = 0; // 0: the connection was reset or refused
      try {
        const res = await send(i);
        await res.arrayBuffer();
        status = res.status;
      } catch {
        /* recorded as 0 */
      }
      result.sends.push({ status, ms: Math.round(performance.now() - t0) });
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const health = (async () => {
    while (Date.now() - started < PHASE_MS) {
      result.health.push(
        await fetch(`${url}/healthz`).then(
          (r) => r.status,
          () => 0,
        ),
      );
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  await Promise.all([senders, health]);
  // a connection that took a freed read slot late in the phase gets its deadline later: give the
  // server one more body deadline (and its check interval) to close every flood connection itself
  const grace = Date.now() + 12_000;
  while (Date.now() < grace && result.attackers.some((a) => !a.closedByServer)) await new Promise((r) => setTimeout(r, 200));
  clearInterval(sampler);
  result.maxRssMiB = Math.max(result.maxRssMiB, rssMiB(child.pid!));
  for (const a of result.attackers) a.end();
  return result;
}

function summarize(r: PhaseResult): Record<string, unknown> {
  const ms = r.sends.map((s) => s.ms).sort((a, b) => a - b);
  const statuses: Record<string, number> = {};
  for (const a of r.attackers) statuses[String(a.status ?? 'none')] = (statuses[String(a.status ?? 'none')] ?? 0) + 1;
  return {
    maxRssMiB: r.maxRssMiB,
    webhooks: r.sends.length,
    webhooksNot202: r.sends.filter((s) => s.status !== 202).length,
    healthzNot200: r.health.filter((s) => s !== 200).length,
    latencyMs: { p50: ms[Math.floor(ms.length / 2)], p95: ms[Math.floor(ms.length * 0.95)], max: ms.at(-1) },
    attackerAnswers: statuses,
    attackerBytesSent: r.attackers.reduce((n, a) => n + a.sent, 0),
  };
}

async function rejected(integration: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^signet_webhook_rejected_total\{integration="([^"]+)",reason="([^"]+)"\} (\d+)$/gm)) {
    if (m[1] === integration) out[m[2]!] = Number(m[3]);
  }
  return out;
}

const rejectionLines = (integration: string): number =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string; integration?: string })
    .filter((l) => l.integration === integration && l.msg?.startsWith('webhook rejected')).length;

const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);

describe('1,000 slow anonymous connections', () => {
  it('against a token kind: each is refused before its body is read; webhooks get 202, /healthz 200, RSS bounded', async () => {
    const body = fixture('distribution-push.json');
    const r = await phase('/hooks/tok', '', (i) =>
      fetch(`${url}/hooks/tok`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
        body: body.replace('v1.2.3', `flood-${i}`),
      }),
    );
    figures.token = summarize(r);
    expect(r.sends.length).toBeGreaterThan(10);
    expect(r.sends.filter((s) => s.status !== 202)).toEqual([]);
    expect(r.health.filter((s) => s !== 200)).toEqual([]);
    expect(r.attackers.filter((a) => !a.closedByServer)).toHaveLength(0);
    expect(r.attackers.filter((a) => a.status !== undefined && a.status !== 401 && a.status !== 429)).toEqual([]);
    expect(r.maxRssMiB).toBeLessThan(RSS_BOUND_MIB);
    const counts = await rejected('tok');
    figures.tokenRejected = counts;
    expect(counts['unauthorized']).toBeGreaterThan(0);
    expect((counts['unauthorized'] ?? 0) + (counts['throttled_auth'] ?? 0)).toBe(FLOOD);
    // one warn line per integration per 10 s, whatever the flood
    expect(rejectionLines('tok')).toBeLessThanOrEqual(Math.ceil(PHASE_MS / 10_000) + 1);
  });

  it('against github (HMAC over the body, forged signatures): bounded reads; webhooks get 202, /healthz 200, RSS bounded', async () => {
    const body = fixture('github-package-published.json');
    const forged = `X-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nX-GitHub-Event: package\r\n`;
    const r = await phase('/hooks/gh', forged, (i) => {
      const b = body.replaceAll('v1.2.3', `flood-${i}`);
      const sig = `sha256=${createHmac('sha256', SECRET).update(b).digest('hex')}`;
      return fetch(`${url}/hooks/gh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-github-event': 'package', 'x-github-delivery': `d-${i}`, 'x-hub-signature-256': sig },
        body: b,
      });
    });
    figures.hmac = summarize(r);
    expect(r.sends.length).toBeGreaterThan(10);
    expect(r.sends.filter((s) => s.status !== 202)).toEqual([]);
    expect(r.health.filter((s) => s !== 200)).toEqual([]);
    expect(r.attackers.filter((a) => !a.closedByServer)).toHaveLength(0);
    expect(r.attackers.filter((a) => a.status !== undefined && ![408, 503].includes(a.status))).toEqual([]);
    expect(r.maxRssMiB).toBeLessThan(RSS_BOUND_MIB);
    const counts = await rejected('gh');
    figures.hmacRejected = counts;
    expect(counts['preauth_busy']).toBeGreaterThan(0);
    expect((counts['too_slow'] ?? 0) + (counts['body_timeout'] ?? 0)).toBeGreaterThan(0);
    expect(sum(counts)).toBe(FLOOD);
    expect(rejectionLines('gh')).toBeLessThanOrEqual(Math.ceil(PHASE_MS / 10_000) + 1);
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^signet_webhook_preauth_bodies 0$/m);
    expect(text).toMatch(/^signet_http_connections \d+$/m);
    figures.connectionsDropped = Number(/^signet_http_connections_dropped_total (\d+)$/m.exec(text)?.[1]);
  });
});
