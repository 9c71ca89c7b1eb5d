/**
 * Static credentials from the config file (use `${ENV}` expansion for the secret):
 * `{ username, password }` answers Basic challenges and is sent to the bearer token service;
 * `{ token }` is sent as `Authorization: Bearer <token>` as is.
 */
import { z } from 'zod';
import type { CredentialSource } from './source.js';

export const basicCredentialsSchema = z.object({ username: z.string().min(1), password: z.string() }).strict();
export const tokenCredentialsSchema = z.object({ token: z.string().min(1) }).strict();

export type BasicCredentialsConfig = z.infer<typeof basicCredentialsSchema>;
export type TokenCredentialsConfig = z.infer<typeof tokenCredentialsSchema>;

export function createBasicSource(cfg: BasicCredentialsConfig): CredentialSource {
  const creds = { username: cfg.username, password: cfg.password };
  return {
    describe: () => `static credentials of user "${cfg.username}"`,
    get: async () => ({ ...creds }),
    invalidate: () => false,
  };
}

export function createTokenSource(cfg: TokenCredentialsConfig): CredentialSource {
  return {
    describe: () => 'a static bearer token',
    get: async () => ({ token: cfg.token }),
    invalidate: () => false,
  };
}
