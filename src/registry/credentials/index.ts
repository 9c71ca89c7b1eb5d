/**
 * The one explicit map of registry credential sources (`registries[].credentials`). Each source
 * lives in its own file with its own zod schema; a config value is routed to a source by the key
 * it has (`username`, `token`, `dockerConfig`, `ecr`, `acr`, `gar`), so a mistake is reported
 * against that source's own fields rather than as "matches none of six forms".
 */
import { z } from 'zod';
import { acrCredentialsSchema, createAcrSource } from './acr.js';
import { createDockerConfigSource, dockerConfigCredentialsSchema } from './docker-config.js';
import { createEcrSource, ecrCredentialsSchema } from './ecr.js';
import { createGarSource, garCredentialsSchema } from './gar.js';
import { basicCredentialsSchema, createBasicSource, createTokenSource, tokenCredentialsSchema } from './static.js';
import type { CredentialContext, CredentialSource } from './source.js';

export type { CredentialContext, CredentialSource, RegistryCredentials } from './source.js';

/** Routing key -> { schema, factory }. To add a source: a file with both, and a line here. */
export const credentialSources = {
  username: { schema: basicCredentialsSchema, create: createBasicSource },
  token: { schema: tokenCredentialsSchema, create: createTokenSource },
  dockerConfig: { schema: dockerConfigCredentialsSchema, create: createDockerConfigSource },
  ecr: { schema: ecrCredentialsSchema, create: createEcrSource },
  acr: { schema: acrCredentialsSchema, create: createAcrSource },
  gar: { schema: garCredentialsSchema, create: createGarSource },
} as const;

type Key = keyof typeof credentialSources;
const KEYS = Object.keys(credentialSources) as Key[];

export type CredentialsConfig = z.output<(typeof credentialSources)[Key]['schema']>;

const FORMS = '{username, password}, {token}, {dockerConfig: path | {path?}}, {ecr: {...}}, {acr: {...}}, {gar: {...}}';

function keyOf(value: object): Key | undefined {
  return KEYS.find((k) => k in value);
}

/** `registries[].credentials`: one of the forms above, validated by the matching source's schema. */
export const credentialsSchema = z.unknown().transform((value, ctx): CredentialsConfig => {
  const key = value !== null && typeof value === 'object' && !Array.isArray(value) ? keyOf(value) : undefined;
  if (!key) {
    ctx.addIssue({ code: 'custom', message: `credentials must be one of ${FORMS}` });
    return z.NEVER;
  }
  const r = credentialSources[key].schema.safeParse(value);
  if (!r.success) {
    for (const issue of r.error.issues)
      ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p)) });
    return z.NEVER;
  }
  return r.data;
});

/** The source for a registry's credentials, or undefined for anonymous access. */
export function createCredentialSource(cfg: CredentialsConfig | undefined, ctx: CredentialContext): CredentialSource | undefined {
  if (!cfg) return undefined;
  const key = keyOf(cfg);
  if (!key) throw new Error('unknown registry credentials form');
  return (credentialSources[key].create as (c: CredentialsConfig, x: CredentialContext) => CredentialSource)(cfg, ctx);
}
