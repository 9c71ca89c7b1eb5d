/**
 * The AWS KMS stand-in (test/helpers/standins/aws-kms.ts: the real JSON 1.1 wire protocol) in a
 * process of its own, so its work and delays do not share the bench's event loop. Started by
 * bench/bench.ts with an IPC channel:
 *   -> {cmd: 'delay', ms}    every later Sign answers after `ms` (0: no delay)
 *   -> {cmd: 'counts'}       <- {counts: {Sign: n, GetPublicKey: n, ...}, signMs: [p50, p99]}
 * On start it sends {ready: {url, port, region, keyArn, accessKeyId, secretAccessKey, publicKeyPem}}.
 * It exits when the IPC channel closes (the bench went away).
 */
import { startAwsKmsStandin } from '../test/helpers/standins/aws-kms.js';

const kms = await startAwsKmsStandin();
const key = kms.addKey({ keySpec: 'ECC_NIST_P256', alias: 'signet-bench' });
let delayMs = 0;

/** (re)arm a delay on every Sign: one fault entry that never runs out */
function setDelay(ms: number): void {
  kms.reset(); // also clears counters: callers read counts before and after
  delayMs = ms;
  if (ms > 0) kms.fail('Sign', { delayMs: ms }, Number.POSITIVE_INFINITY);
}

process.on('message', (m: { cmd?: string; ms?: number; id?: number }) => {
  if (m.cmd === 'delay') {
    setDelay(Number(m.ms ?? 0));
    process.send?.({ id: m.id, ok: true, delayMs });
  } else if (m.cmd === 'counts') {
    const t = [...kms.signTimesMs].sort((a, b) => a - b);
    const p = (q: number) => t[Math.min(t.length - 1, Math.max(0, Math.ceil(q * t.length) - 1))] ?? NaN;
    // the request log would grow without bound over a long soak: keep only the counters
    kms.requests.length = 0;
    process.send?.({ id: m.id, counts: { ...kms.calls }, signServerMs: { p50: p(0.5), p99: p(0.99) }, delayMs });
  }
});
process.on('disconnect', () => {
  void kms.close().finally(() => process.exit(0));
});

process.send?.({
  ready: {
    url: kms.url,
    port: kms.port,
    region: kms.region,
    keyArn: key.arn,
    accessKeyId: kms.accessKeyId,
    secretAccessKey: kms.secretAccessKey,
    publicKeyPem: key.publicKeyPem,
  },
});
