import { describe, expect, it } from 'vitest';
import { isAttachmentTag, parseReference, signatureTag } from '../../../src/registry/reference.js';

const D = 'sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6';

describe('image references', () => {
  it('parses host, repository, tag and digest', () => {
    expect(parseReference('127.0.0.1:5000/team-a/api:v1')).toEqual({ host: '127.0.0.1:5000', repository: 'team-a/api', tag: 'v1' });
    expect(parseReference(`r.example.com/a/b/c@${D}`)).toEqual({ host: 'r.example.com', repository: 'a/b/c', digest: D });
    expect(parseReference(`localhost/x:1@${D}`)).toEqual({ host: 'localhost', repository: 'x', tag: '1', digest: D });
    expect(parseReference('nginx')).toEqual({ host: 'docker.io', repository: 'library/nginx' });
  });
  it('refuses traversal, bad digests and upper case', () => {
    for (const bad of [
      'r.io/../etc/passwd',
      'r.io/a/..',
      'r.io/a//b',
      'r.io/A/b',
      `r.io/a@sha256:${'0'.repeat(63)}`,
      'r.io/a:',
      'r.io/a:-x',
      '',
      'r.io/a%2f..',
    ]) {
      expect(() => parseReference(bad), bad).toThrow(/invalid image reference/);
    }
  });
  it('names the legacy signature tag and recognizes attachment tags', () => {
    expect(signatureTag(D)).toBe(`sha256-${D.slice(7)}.sig`);
    expect(isAttachmentTag(signatureTag(D))).toBe(true);
    expect(isAttachmentTag(`sha256-${D.slice(7)}`)).toBe(true);
    expect(isAttachmentTag('v1.0')).toBe(false);
  });
});
