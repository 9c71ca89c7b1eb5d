import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactText } from '../../src/log.js';

describe('log redaction', () => {
  it('masks credentials inside free text', () => {
    expect(redactText('GET https://r/token?scope=x&token=abc123&service=y failed')).toBe('GET https://r/token?scope=x&token=[redacted]&service=y failed');
    expect(redactText('sent Authorization: Bearer eyJhbGciOi.x.y to r')).toBe('sent Authorization: Bearer [redacted] to r');
    expect(redactText('Basic dXNlcjpwYXNz')).toBe('Basic [redacted]');
    expect(redactText('password=hunter2')).toBe('password=hunter2'); // not a query parameter: left alone
    expect(redactText('?password=hunter2')).toBe('?password=[redacted]');
  });
  it('redacts secret-named fields by path in structured logs', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    log.info({ secret: 's1', password: 'p1', token: 't1', registry: { password: 'p2', credentials: { username: 'u', password: 'p3' } }, headers: { authorization: 'Bearer t2' } }, 'x');
    const text = lines.join('');
    for (const s of ['s1', 'p1', 't1', 'p2', 'p3', 'Bearer t2']) expect(text).not.toContain(s);
    expect(text).toContain('[redacted]');
  });
});
