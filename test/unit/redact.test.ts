import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactText, upstreamText } from '../../src/log.js';

describe('log redaction', () => {
  it('masks credentials inside free text', () => {
    expect(redactText('GET https://r/token?scope=x&token=abc123&service=y failed')).toBe('GET https://r/token?scope=x&token=[redacted]&service=y failed');
    expect(redactText('sent Authorization: Bearer eyJhbGciOi.x.y to r')).toBe('sent Authorization: Bearer [redacted] to r');
    expect(redactText('Basic dXNlcjpwYXNz')).toBe('Basic [redacted]');
    expect(redactText('?password=hunter2')).toBe('?password=[redacted]');
  });
  it('one list of credential shapes for every message (the credential sources and key services used their own)', () => {
    // name=value, name: value and JSON "name":"value", for OAuth2, Vault, AWS and Alibaba names
    expect(redactText('password=hunter2')).toBe('password=[redacted]');
    expect(redactText('{"error":"x","access_token":"at-1","refresh_token": "rt-1"}')).toBe(
      '{"error":"x","access_token":"[redacted]","refresh_token": "[redacted]"}',
    );
    expect(redactText('client_secret=cs&assertion=as')).toBe('client_secret=[redacted]&assertion=[redacted]');
    expect(redactText('X-Vault-Token: root-1 and authorization: raw-1')).toBe('X-Vault-Token: [redacted] and authorization: [redacted]');
    expect(redactText('X-Amz-Security-Token=IQoJ%2Bab&X-Amz-Signature=abc')).toBe('X-Amz-Security-Token=[redacted]&X-Amz-Signature=[redacted]');
    expect(redactText('AccessKeyId%3DLTAIabcdefgh12%26SecurityToken%3DSTS.x')).not.toMatch(/abcdefgh|STS\.x/);
    // token shapes wherever they stand
    for (const t of [
      'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
      'ya29.a0AfH6SMBx-token',
      'hvs.CAESIJ0123456789abcdefghijkl',
      'AKIAABCDEFGHIJKLMNOP',
      'LTAI5tAbCdEfGhIj',
      'STS.NUgYrLnoC37mZZCNnAbCd',
    ]) {
      expect(redactText(`got ${t} back`), t).not.toContain(t.slice(4));
    }
    // words that only look like names are left alone
    expect(redactText('InvalidSignatureException: the token expired')).toBe('InvalidSignatureException: the token expired');
    // values signet itself sent are masked wherever they are echoed
    expect(redactText('denied for my-plain-token-1 (my-plain-token-1)', ['my-plain-token-1', undefined, ''])).toBe('denied for [redacted] ([redacted])');
  });
  it('upstreamText: redacted, one line, bounded', () => {
    expect(upstreamText('line one\n  line two\ttoken=abc')).toBe('line one line two token=[redacted]');
    expect(upstreamText('x'.repeat(10_000), { max: 20 })).toBe(`${'x'.repeat(20)}…`);
    expect(upstreamText(undefined)).toBe('');
    expect(upstreamText({ toString: () => 'Bearer abc' })).toBe('Bearer [redacted]');
  });
  it('redacts secret-named fields by path in structured logs', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    log.info(
      {
        secret: 's1',
        password: 'p1',
        token: 't1',
        registry: { password: 'p2', credentials: { username: 'u', password: 'p3' } },
        headers: { authorization: 'Bearer t2' },
      },
      'x',
    );
    const text = lines.join('');
    for (const s of ['s1', 'p1', 't1', 'p2', 'p3', 'Bearer t2']) expect(text).not.toContain(s);
    expect(text).toContain('[redacted]');
  });
});
