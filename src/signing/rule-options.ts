/**
 * The per-rule signing options (zod), used by the rule schema in src/config/schema.ts:
 *
 *   formats: [legacy, bundle]          which storage formats to write (default: both)
 *   rekor: { url, required, ... }      log every signature to this Rekor v1 instance
 *   annotations: { key: template }     payload `optional` / statement subject annotations
 *
 * See docs/formats.md for what each writes and how verifiers check it.
 */
import { z } from 'zod';
import { serviceUrlSchema } from '../edge/service-client.js';
import { SignetError } from '../errors.js';
import { rekorPublicKey } from '../transparency/rekor.js';
import { checkAnnotationTemplates } from './annotations.js';
import { FORMAT_NAMES } from './plan.js';

export const signatureFormatsSchema = z
  .array(z.enum(FORMAT_NAMES))
  .min(1, `name at least one format (${FORMAT_NAMES.join(', ')})`)
  .superRefine((list, ctx) => {
    list.forEach((f, i) => {
      if (list.indexOf(f) !== i) ctx.addIssue({ code: 'custom', message: `format "${f}" listed twice`, path: [i] });
    });
  });

export const rekorRuleSchema = z
  .object({
    /** Rekor v1 API base URL: https://rekor.sigstore.dev or a self-hosted instance. */
    url: serviceUrlSchema('https://rekor.sigstore.dev'),
    /**
     * true (default): nothing is written until Rekor has the entry; outages are retried (the job
     * waits for Rekor). false: when Rekor still fails after retries, the signature is written
     * without an entry (the report says so) and logged the next time the digest is signed.
     */
    required: z.boolean().default(true),
    /** Rekor's public key (PEM, ECDSA): when set, each SET and logID Rekor returns is checked. */
    publicKey: z
      .string()
      .superRefine((pem, ctx) => {
        try {
          rekorPublicKey(pem);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: err instanceof SignetError ? err.message : 'not a PEM public key' });
        }
      })
      .optional(),
    /** Per-request timeout. */
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .strict();

export const annotationsSchema = z.record(z.string(), z.string().max(4096)).superRefine((a, ctx) => {
  for (const p of checkAnnotationTemplates(a)) ctx.addIssue({ code: 'custom', message: p.message, path: [p.key] });
});

export type RekorRuleConfig = z.infer<typeof rekorRuleSchema>;
