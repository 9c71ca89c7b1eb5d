/**
 * The fields every `integrations[]` entry has; each adapter adds its own (with its own zod
 * schema) through `integrationConfig(kind, extra)`.
 */
import { z } from 'zod';

export const integrationBaseShape = {
  name: z.string().regex(/^[a-z0-9][a-z0-9-_]{0,62}$/, 'lowercase letters, digits, - and _ (it becomes the URL /hooks/<name>)'),
  /** Shared secret the registry presents (Authorization: Bearer <secret>, or ?token=<secret>). */
  secret: z.string().min(16, 'use at least 16 characters').optional(),
  /** Accept unauthenticated calls. Only for closed networks; a warning is logged at startup. */
  insecure: z.boolean().default(false),
  /** Requests per second this endpoint accepts (token bucket); over it: 429 with Retry-After. */
  rateLimit: z
    .object({ requestsPerSecond: z.number().positive().default(2000), burst: z.number().int().min(1).default(5000) })
    .strict()
    .default({ requestsPerSecond: 2000, burst: 5000 }),
};

const baseObject = z.object(integrationBaseShape);

export function integrationConfig<K extends string>(kind: K): ReturnType<typeof baseWith<K>>;
export function integrationConfig<K extends string, E extends z.ZodRawShape>(kind: K, extra: E): ReturnType<typeof baseWithExtra<K, E>>;
export function integrationConfig(kind: string, extra?: z.ZodRawShape) {
  return extra ? baseWithExtra(kind, extra) : baseWith(kind);
}
function baseWith<K extends string>(kind: K) {
  return baseObject.extend({ kind: z.literal(kind) }).strict();
}
function baseWithExtra<K extends string, E extends z.ZodRawShape>(kind: K, extra: E) {
  return baseObject
    .extend({ kind: z.literal(kind) })
    .extend(extra)
    .strict();
}

/** What every integration config has, whatever its kind. */
export type IntegrationBase = z.infer<ReturnType<typeof baseWith<string>>>;
