/**
 * Configuration of an RFC 3161 timestamp authority for a signing rule: the zod schema (to be
 * wired into the rule options next to `rekor`) and the loader of the TSA's certificate chain.
 *
 * ```yaml
 * timestamp:
 *   url: https://timestamp.example.com/api/v1/timestamp
 *   certificateChain: tsa-chain.pem   # or the PEM text; leaf first, root last
 *   timeoutMs: 10000
 *   required: true
 * ```
 *
 * The chain is the trust anchor of every timestamp signet writes (the client refuses tokens that
 * do not verify against it) and is what exported trust roots list as the timestamp authority,
 * so it is required, not fetched from the TSA.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { serviceUrlSchema } from '../edge/service-client.js';
import { SignetError } from '../errors.js';
import { parseTimestampChain, type TimestampChain } from './timestamp.js';

export const timestampRuleSchema = z
  .object({
    /** The TSA endpoint (RFC 3161 over HTTP), used as is: e.g. https://timestamp.sigstore.dev/api/v1/timestamp. */
    url: serviceUrlSchema('https://timestamp.sigstore.dev/api/v1/timestamp'),
    /**
     * The TSA's certificate chain, leaf (EKU timeStamping) first and self-signed root last: PEM
     * text, or the path of a PEM file (relative to the config file). Checked by loadTimestampChain.
     */
    certificateChain: z.string().min(1, 'must be PEM text or a file path'),
    /** Overall deadline of each request to the TSA (ms). */
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    /**
     * true (default): nothing is written until the TSA has answered with a token that verifies;
     * outages are retried (the job waits for the TSA). false: when the TSA still fails after
     * retries, the signature is written without a timestamp (the report says so), like
     * rekor.required false.
     */
    required: z.boolean().default(true),
  })
  .strict();

export type TimestampRuleConfig = z.infer<typeof timestampRuleSchema>;

/**
 * Read and check `certificateChain`: PEM text when it holds a PEM block, otherwise a file path
 * (relative paths resolve against `baseDir`, the config file's directory). Throws
 * SignetError('CONFIG_INVALID') saying what is wrong (unreadable file, no certificate, leaf
 * without EKU timeStamping, a link that does not verify, no self-signed root, expired leaf).
 */
export function loadTimestampChain(value: string, baseDir: string, opts: { now?: Date } = {}): TimestampChain {
  let pem: string;
  let what = 'timestamp certificateChain';
  if (value.includes('-----BEGIN')) pem = value;
  else {
    const path = isAbsolute(value) ? value : resolve(baseDir, value);
    what = `timestamp certificateChain ${path}`;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new SignetError('CONFIG_INVALID', `${what}: cannot read the file (${code})`);
    }
  }
  const chain = parseTimestampChain(pem, what);
  const leaf = chain.certificates[0]!;
  const now = opts.now ?? new Date();
  const x = new X509Certificate(leaf);
  if (new Date(x.validTo) < now) {
    throw new SignetError(
      'CONFIG_INVALID',
      `${what}: the TSA certificate expired on ${new Date(x.validTo).toISOString()}; every new timestamp would be refused`,
    );
  }
  return chain;
}
