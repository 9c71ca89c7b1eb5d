/** src/config/suggest.ts through the loader: an unknown field names the known one it is closest to, where the schema can be walked. */
import { describe, expect, it } from 'vitest';
import { type ConfigError, parseConfigText } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';
import { suggestField } from '../../../src/config/suggest.js';

describe('unknown fields', () => {
  it('suggest the closest known field of that place (case, up to two edits), else nothing', () => {
    expect(suggestField(configSchema, ['server'], 'prot')).toBe('port');
    expect(suggestField(configSchema, ['registries', 0], 'timeoutMS')).toBe('timeoutMs');
    expect(suggestField(configSchema, ['integrations', 0], 'secrett')).toBe('secret'); // a discriminated union: every kind's fields
    expect(suggestField(configSchema, ['rules', 3], 'tag')).toBe('tags');
    expect(suggestField(configSchema, ['rules', 3], 'colour')).toBeUndefined();
    expect(suggestField(configSchema, ['nosuch', 'deeper'], 'x')).toBeUndefined();
  });

  it('are reported on their own line, with the suggestion; inside registry credentials too', () => {
    const text = `registries:
  - host: 127.0.0.1:5000
    timeoutMS: 5
    credentials: { username: u, password: p, pasword: x }
keys: [{ name: k, provider: file, path: k.pem }]
`;
    let problems: { path: string; line?: number; message: string }[] = [];
    try {
      parseConfigText(text, 'x.yaml', {});
    } catch (e) {
      problems = (e as ConfigError).problems.map((p) => ({ path: p.path.join('.'), line: p.line, message: p.message }));
    }
    expect(problems).toEqual([
      { path: 'registries.0.timeoutMS', line: 3, message: 'unknown field "timeoutMS" (did you mean "timeoutMs"?)' },
      { path: 'registries.0.credentials.pasword', line: 4, message: 'unknown field "pasword"' },
    ]);
  });
});
