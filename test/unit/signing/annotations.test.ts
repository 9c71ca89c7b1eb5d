import { describe, expect, it } from 'vitest';
import { checkAnnotationTemplates, expandAnnotations } from '../../../src/signing/annotations.js';
import { parseConfigText } from '../../../src/config/load.js';

const values = { registry: 'r.example:5000', repository: 'team/app', tag: 'v1', digest: `sha256:${'a'.repeat(64)}`, pusher: 'alice' };

describe('payload annotation templates', () => {
  it('expands every field; literal text and $${ stay as they are', () => {
    expect(expandAnnotations({ ref: '${registry}/${repository}:${tag}@${digest}', by: '${pusher}', team: 'platform', raw: 'cost $${tag}' }, values)).toEqual({
      ref: `r.example:5000/team/app:v1@sha256:${'a'.repeat(64)}`,
      by: 'alice',
      team: 'platform',
      raw: 'cost ${tag}',
    });
  });
  it('leaves out an annotation whose field this push lacks (no tag, no pusher), rather than writing it empty', () => {
    expect(expandAnnotations({ tag: '${tag}', by: 'pushed by ${pusher}', team: 'x' }, { ...values, tag: undefined, pusher: '' })).toEqual({ team: 'x' });
    expect(expandAnnotations({ tag: '${tag}' }, { registry: 'r' })).toBeUndefined();
    expect(expandAnnotations(undefined, values)).toBeUndefined();
  });
  it('config problems: unknown fields, bad keys, the reserved timestamp key, an unterminated ${', () => {
    const problems = checkAnnotationTemplates({ a: '${user}', 'bad key': 'x', timestamp: '1', b: '${tag', ok: '${tag}-$${x}' });
    expect(problems.map((p) => p.key)).toEqual(['a', 'bad key', 'timestamp', 'b']);
    expect(problems[0]!.message).toMatch(/unknown field \$\{user\}/);
  });
  it('in a config file: $${tag} reaches the rule as ${tag} (config ${VAR} expansion runs first)', () => {
    const r = parseConfigText(
      `registries: [{ host: "r:5000" }]\nkeys: [{ name: k, provider: file, path: k.pem }]\nrules: [{ match: "r:5000/**", keys: [k], annotations: { tag: "$\${tag}", env: "\${env.TEAM}" } }]\n`,
      'c.yaml',
      { TEAM: 'platform' },
    );
    expect(r.config.rules[0]!.annotations).toEqual({ tag: '${tag}', env: 'platform' });
  });
});
