/**
 * Vault authentication for the `vault` key provider: a static token, or AppRole login with the
 * token renewed (renew-self) or replaced by a new login once two thirds of its TTL have passed.
 */
import { SignetError } from '../../errors.js';
import type { VaultHttp } from './http.js';

export type AuthConfig = { kind: 'token'; token: string } | { kind: 'approle'; mount: string; roleId: string; secretId: string };

export interface TokenState {
  token: string;
  obtainedAt: number;
  /** Refresh after this time (2/3 of the TTL); Infinity for tokens without TTL. */
  refreshAt: number;
  /** Never use the token after this time. */
  expiresAt: number;
  renewable: boolean;
}

export class VaultAuth {
  private state: TokenState | undefined;
  private pending: Promise<TokenState> | undefined;

  constructor(
    private readonly http: VaultHttp,
    readonly cfg: AuthConfig,
  ) {
    if (cfg.kind === 'token') {
      this.state = { token: cfg.token, obtainedAt: Date.now(), refreshAt: Infinity, expiresAt: Infinity, renewable: false };
    }
  }

  get kind(): AuthConfig['kind'] {
    return this.cfg.kind;
  }

  /** A usable token, logging in or renewing first when due (single flight). */
  async token(): Promise<string> {
    const now = Date.now();
    const s = this.state;
    if (s && now < s.refreshAt) return s.token;
    const usable = s && now < s.expiresAt - 1000 ? s : undefined;
    if (!this.pending) {
      this.pending = this.refresh(usable).finally(() => {
        this.pending = undefined;
      });
    }
    try {
      return (await this.pending).token;
    } catch (err) {
      // renewal and login failed (e.g. Vault briefly unreachable) but the token is still valid:
      // keep using it; the next call tries again
      if (usable && err instanceof SignetError && err.retryable) return usable.token;
      throw err;
    }
  }

  /** Forget the current AppRole token so the next call logs in again. */
  invalidate(): void {
    if (this.cfg.kind === 'approle') this.state = undefined;
  }

  /** The current token was obtained less than `ms` ago. */
  fresh(ms: number): boolean {
    return this.state !== undefined && Date.now() - this.state.obtainedAt < ms;
  }

  private async refresh(current: TokenState | undefined): Promise<TokenState> {
    if (this.cfg.kind === 'token') return this.state!;
    if (current?.renewable) {
      try {
        const renewed = await this.renewSelf(current.token);
        if (renewed) return (this.state = renewed);
      } catch {
        // fall through to a new login
      }
    }
    return (this.state = await this.login());
  }

  private fromAuth(auth: { client_token?: unknown; lease_duration?: unknown; renewable?: unknown } | undefined, what: string): TokenState {
    if (!auth || typeof auth.client_token !== 'string' || auth.client_token.length === 0) {
      throw new SignetError('KEY_UNAVAILABLE', `key "${this.http.keyName}": Vault ${what} answered without a client token`);
    }
    const now = Date.now();
    const ttl = typeof auth.lease_duration === 'number' && auth.lease_duration > 0 ? auth.lease_duration * 1000 : 0;
    return {
      token: auth.client_token,
      obtainedAt: now,
      refreshAt: ttl ? now + (ttl * 2) / 3 : Infinity,
      expiresAt: ttl ? now + ttl : Infinity,
      renewable: auth.renewable === true,
    };
  }

  private async login(): Promise<TokenState> {
    const cfg = this.cfg as Extract<AuthConfig, { kind: 'approle' }>;
    const apiPath = `/v1/auth/${cfg.mount}/login`;
    this.http.secret(cfg.roleId, cfg.secretId);
    const res = await this.http.call('POST', apiPath, 'AppRole login', undefined, { role_id: cfg.roleId, secret_id: cfg.secretId });
    if (res.status !== 200) {
      // a wrong role_id / secret_id comes back as 400 "invalid role or secret ID" (403 with a bad namespace)
      if (res.status >= 400 && res.status < 500 && res.status !== 429) {
        const detail = this.http.errors(res.body);
        throw new SignetError(
          'KEY_DENIED',
          `key "${this.http.keyName}": Vault AppRole login at ${this.http.address} (auth/${cfg.mount}) was refused (HTTP ${res.status})${detail ? `: ${detail}` : ''}`,
          { status: res.status },
        );
      }
      throw this.http.fail(res, 'AppRole login', `auth/${cfg.mount}`);
    }
    return this.fromAuth((res.body as { auth?: never } | undefined)?.auth, 'AppRole login');
  }

  /** renew-self; undefined when the renewal would leave too little TTL (max TTL reached). */
  private async renewSelf(token: string): Promise<TokenState | undefined> {
    const res = await this.http.call('POST', '/v1/auth/token/renew-self', 'token renewal', token, {});
    if (res.status !== 200) return undefined;
    const state = this.fromAuth({ ...(res.body as { auth?: object } | undefined)?.auth, client_token: token }, 'token renewal');
    if (state.expiresAt - state.obtainedAt < 10_000) return undefined;
    return state;
  }
}
