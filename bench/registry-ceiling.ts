/**
 * The registry's own limits on this machine, without signet, to read bench.ts figures against:
 *
 * 1. notification delivery: N image pushes with notifications aimed at a stub receiver that
 *    answers 202 at once (optionally after --stub-delay ms). Reports pushes/s, events delivered/s,
 *    TCP connections per event and the push -> manifest-event lag.
 * 2. signature writes: for the same N images, signet's exact request sequence for one legacy
 *    .sig (src/signing/pipeline.ts + attach.ts at 2d051d7: GET manifest by tag, GET .sig 404 outside
 *    and again inside the lock, 2 x (POST upload + PUT blob), PUT .sig manifest, GET .sig
 *    read-back) with a keep-alive undici Agent, --concurrency at once, step by step, with the
 *    registry's CPU time per step. `npm run bench` measures the same sequence pipelined
 *    (phase "floor") next to the write-only floor.
 *
 *   npx tsx bench/registry-ceiling.ts [--images 200] [--concurrency 16] [--stub-delay 0] [--notify-filter]
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { pushImage, sigTag } from '../test/helpers/images.js';
import { freePort } from '../test/helpers/ports.js';
import { startRegistry, type RunningRegistry } from '../test/helpers/registry.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    images: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '16' },
    'stub-delay': { type: 'string', default: '0' },
    'notify-filter': { type: 'boolean', default: false },
  },
});
const N = Number(values.images);
const C = Number(values.concurrency);
const STUB_DELAY = Number(values['stub-delay']);
const OCI = 'application/vnd.oci.image.manifest.v1+json';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function main(): Promise<void> {
  // ---- 1. notification delivery to a stub -----------------------------------------------------
  const port = await freePort();
  let events = 0;
  let posts = 0;
  let connections = 0;
  const manifestEventAt = new Map<string, number>();
  const stub = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts++;
      try {
        for (const e of (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: any[] }).events) {
          events++;
          if (e.action === 'push' && e.target?.tag === 'v1') manifestEventAt.set(e.target.repository, Date.now());
        }
      } catch {
        /* not JSON */
      }
      setTimeout(() => res.writeHead(202, { 'content-type': 'application/json' }).end('{}'), STUB_DELAY);
    });
  });
  stub.on('connection', () => connections++);
  await new Promise<void>((r) => stub.listen(port, '127.0.0.1', () => r()));

  let registry: RunningRegistry | undefined;
  const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
  try {
    registry = await startRegistry({
      notifyUrl: `http://127.0.0.1:${port}/hooks/local`,
      notifyHeaders: { Authorization: ['Bearer stub'] },
      ...(values['notify-filter'] ? { notifyIgnoredMediaTypes: ['application/octet-stream'], notifyIgnoredActions: ['pull'] } : {}),
    });
    const reg = registry;
    const images = Array.from({ length: N }, (_, i) => ({ repo: `bench/app-${i}`, digest: '', doneAt: 0 }));
    const cpu0 = cpuSeconds(reg.pid);
    const t0 = Date.now();
    await pool(images, C, async (img) => {
      img.digest = (await pushImage(reg, img.repo, 'v1')).digest;
      img.doneAt = Date.now();
    });
    const pushMs = Date.now() - t0;
    const deadline = Date.now() + 120_000;
    while (manifestEventAt.size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const allMs = Date.now() - t0;
    const lag = images.map((i) => (manifestEventAt.get(i.repo) ?? NaN) - i.doneAt).sort((a, b) => a - b);
    const pushCpu = cpuSeconds(reg.pid) - cpu0;
    console.log(
      `registry ${reg.url}: ${N} pushes, ${C} at once, stub answers after ${STUB_DELAY} ms${values['notify-filter'] ? ', blob and pull events filtered' : ''}`,
    );
    console.log(
      `  pushes/s                     ${((1000 * N) / pushMs).toFixed(1)}  (registry CPU ${((1000 * pushCpu) / N).toFixed(1)} ms per image push incl. notifications)`,
    );
    console.log(`  events delivered             ${events} in ${posts} POSTs over ${connections} TCP connections`);
    console.log(`  events/s (push start -> last manifest event) ${((1000 * events) / allMs).toFixed(1)}`);
    console.log(`  push -> manifest event lag   p50 ${lag[Math.floor(N / 2)]} ms, p99 ${lag[Math.floor(N * 0.99)]} ms`);

    // ---- 2. signet's signature-write sequence, step by step ------------------------------------
    const call = async (method: string, pathOrUrl: string, body?: Buffer, headers: Record<string, string> = {}) => {
      const r = await request(pathOrUrl.startsWith('http') ? pathOrUrl : `${reg.url}${pathOrUrl}`, {
        method: method as 'GET',
        headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        ...(body ? { body } : {}),
        dispatcher: agent,
      });
      const b = method === 'HEAD' ? (await r.body.dump(), Buffer.alloc(0)) : Buffer.from(await r.body.arrayBuffer());
      return { status: r.statusCode, headers: r.headers, body: b };
    };
    const upload = async (repo: string, data: Buffer): Promise<void> => {
      const start = await call('POST', `/v2/${repo}/blobs/uploads/`, undefined, { 'content-length': '0' });
      const u = new URL(String(start.headers['location']), reg.url);
      u.searchParams.set('digest', sha256(data));
      const put = await call('PUT', u.href, data, { 'content-type': 'application/octet-stream' });
      if (put.status !== 201) throw new Error(`blob PUT -> ${put.status}`);
    };
    const blobs = new Map<string, { payload: Buffer; config: Buffer }>();
    const steps: [string, (repo: string, digest: string) => Promise<void>][] = [
      ['GET manifest by tag', async (r) => void (await call('GET', `/v2/${r}/manifests/v1`, undefined, { accept: OCI }))],
      ['GET .sig (404)', async (r, d) => void (await call('GET', `/v2/${r}/manifests/${sigTag(d)}`, undefined, { accept: OCI }))],
      ['GET .sig (404, in the lock)', async (r, d) => void (await call('GET', `/v2/${r}/manifests/${sigTag(d)}`, undefined, { accept: OCI }))],
      [
        'POST+PUT payload blob',
        async (r, d) => {
          const payload = Buffer.from(
            JSON.stringify({
              critical: { identity: { 'docker-reference': r }, image: { 'docker-manifest-digest': d }, type: 'cosign container image signature' },
              optional: null,
            }),
          );
          const config = Buffer.from(
            JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [sha256(payload)] }, n: randomBytes(4).toString('hex') }),
          );
          blobs.set(r, { payload, config });
          await upload(r, payload);
        },
      ],
      ['POST+PUT config blob', async (r) => upload(r, blobs.get(r)!.config)],
      [
        'PUT .sig manifest (tag)',
        async (r, d) => {
          const { payload, config } = blobs.get(r)!;
          const m = Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              mediaType: OCI,
              config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: sha256(config) },
              layers: [
                {
                  mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
                  size: payload.length,
                  digest: sha256(payload),
                  annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQ==' },
                },
              ],
            }),
          );
          const put = await call('PUT', `/v2/${r}/manifests/${sigTag(d)}`, m, { 'content-type': OCI });
          if (put.status !== 201) throw new Error(`manifest PUT -> ${put.status}: ${put.body.toString()}`);
        },
      ],
      ['GET .sig (read-back)', async (r, d) => void (await call('GET', `/v2/${r}/manifests/${sigTag(d)}`, undefined, { accept: OCI }))],
    ];
    console.log(`\nsignet's signature-write sequence on the same ${N} images, ${C} at once, keep-alive:`);
    let totalMs = 0;
    let totalCpu = 0;
    for (const [name, fn] of steps) {
      const c0 = cpuSeconds(reg.pid);
      const s0 = Date.now();
      await pool(images, C, (img) => fn(img.repo, img.digest));
      const ms = Date.now() - s0;
      const cpu = cpuSeconds(reg.pid) - c0;
      totalMs += ms;
      totalCpu += cpu;
      console.log(
        `  ${name.padEnd(26)} ${String(ms).padStart(6)} ms  ${((1000 * N) / ms).toFixed(0).padStart(5)}/s  registry CPU ${((1000 * cpu) / N).toFixed(2)} ms/op`,
      );
    }
    console.log(`  => ${((1000 * N) / totalMs).toFixed(1)} signature writes/s, registry CPU ${((1000 * totalCpu) / N).toFixed(1)} ms per signature write`);
  } finally {
    await agent.close();
    await registry?.stop();
    stub.closeAllConnections();
    stub.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
