/**
 * src/health/registry-check.ts against a real docker-registry with token auth: the check logs in
 * (a token for GET /v2/, one per literal repository of the rules), a wrong password is
 * REGISTRY_AUTH_FAILED, and RegistryAccessCheck (what /readyz uses) asks the token service again
 * only once its interval has passed, answering from the last result meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignetError } from '../../src/errors.js';
import { checkRegistryAccess, literalRepositories, RegistryAccessCheck } from '../../src/health/registry-check.js';
import { RegistryDirectory } from '../../src/registry/directory.js';
import { registrySchema } from '../../src/config/schema.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { waitFor } from '../helpers/signet.js';

let registry: RunningRegistry;
const dirs: RegistryDirectory[] = [];
beforeAll(async () => {
  registry = await startRegistry({ auth: { kind: 'token', username: 'ci', password: 'right' } });
}, 60_000);
afterAll(async () => {
  await Promise.all(dirs.map((d) => d.close()));
  await registry?.stop();
});

const directory = (password: string) => {
  const d = new RegistryDirectory([
    registrySchema.parse({
      host: registry.host,
      insecure: true,
      authHosts: [new URL(registry.tokenServer!.realm).host],
      credentials: { username: 'ci', password },
    }),
  ]);
  dirs.push(d);
  return d;
};

describe('literalRepositories', () => {
  it('the repositories rules name without a glob on this host or an alias, at most 3', () => {
    const rules = ['h.io/team/app', 'h.io/team/**', 'alias.h.io/other/app', 'x.io/team/app', 'h.io/a', 'h.io/b', 'h.io/c'].map((match) => ({ match }));
    expect(literalRepositories({ host: 'h.io', aliases: ['alias.h.io'] }, rules)).toEqual(['team/app', 'other/app', 'a']);
  });
});

describe('checkRegistryAccess', () => {
  it('right password: a token without scope for GET /v2/ and one for the literal repository; wrong: REGISTRY_AUTH_FAILED', async () => {
    const ok = directory('right').all[0]!;
    const issued = registry.tokenServer!.issued();
    await checkRegistryAccess(ok, [{ match: `${registry.host}/team/app` }, { match: `${registry.host}/other/**` }]);
    expect(registry.tokenServer!.issued() - issued).toBe(2);

    const bad = directory('wrong').all[0]!;
    const err = await checkRegistryAccess(bad, []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignetError);
    expect((err as SignetError).code).toBe('REGISTRY_AUTH_FAILED');
    expect((err as SignetError).message).not.toContain('wrong');
  });
});

describe('RegistryAccessCheck (readiness)', () => {
  it('checks once, answers from the last result until the interval passed, then checks again', async () => {
    let now = 1_000_000;
    let d = directory('wrong');
    const check = new RegistryAccessCheck(() => ({ registries: d.all, rules: [] }), { intervalMs: 60_000, now: () => now });
    const refused = registry.tokenServer!.refused();
    await expect(check.verify(registry.host)).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED' });
    const afterFirst = registry.tokenServer!.refused();
    expect(afterFirst).toBeGreaterThan(refused);
    // within the interval: the cached failure, no request
    now += 30_000;
    await expect(check.verify(registry.host)).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED' });
    expect(registry.tokenServer!.refused()).toBe(afterFirst);
    // the credentials are fixed (a reload) and the interval passes: the stale result is answered
    // while a re-check runs, then the new one
    d = directory('right');
    now += 31_000;
    await expect(check.verify(registry.host)).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED' }); // stale, re-check started
    await waitFor(
      'the re-check',
      () =>
        check.verify(registry.host).then(
          () => true,
          () => false,
        ),
      10_000,
      50,
    );
    // a host that is not configured is nobody's business here
    await expect(check.verify('127.0.0.1:1')).resolves.toBeUndefined();
  }, 30_000);
});
