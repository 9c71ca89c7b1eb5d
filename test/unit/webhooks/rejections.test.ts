/** The rejection log line is sampled: one per integration per 10 s, carrying what it stands for. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { Metrics } from '../../../src/metrics.js';
import { Rejections } from '../../../src/webhooks/rejections.js';

describe('Rejections', () => {
  it('counts every rejection and logs one line per integration per 10 s, with the suppressed counts', async () => {
    const lines: any[] = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
        cb();
      },
    });
    let now = 0;
    const metrics = new Metrics();
    const r = new Rejections(metrics, createLogger({ level: 'info', destination: sink }), () => now);
    for (let i = 0; i < 50; i++) r.record('a', i % 5 ? 'unauthorized' : 'throttled_auth', '127.0.0.1');
    r.record('b', 'preauth_busy', '127.0.0.1');
    now = 9_999;
    r.record('a', 'unauthorized', '127.0.0.1');
    now = 10_000;
    r.record('a', 'too_slow', '127.0.0.1');
    expect(lines.map((l) => [l.integration, l.reason, l.suppressedTotal])).toEqual([
      ['a', 'throttled_auth', undefined],
      ['b', 'preauth_busy', undefined],
      ['a', 'too_slow', 50],
    ]);
    expect(lines[2].suppressed).toEqual({ unauthorized: 41, throttled_auth: 9 });
    expect(lines[2].msg).toBe('webhook rejected: body arriving too slowly');
    const values = (await metrics.webhookRejected.get()).values;
    expect(values.reduce((n, v) => n + v.value, 0)).toBe(53);
  });
});
