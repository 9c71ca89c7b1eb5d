import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyTooLargeError, readCapped } from '../../../src/edge/read.js';

describe('readCapped', () => {
  it('returns a body within the cap', async () => {
    const body = Readable.from([Buffer.from('ab'), Buffer.from('cd')]);
    expect((await readCapped(body, 4)).toString()).toBe('abcd');
  });
  it('stops reading and destroys the stream past the cap', async () => {
    let produced = 0;
    const body = new Readable({
      read() {
        produced++;
        this.push(Buffer.alloc(1024));
      },
    });
    await expect(readCapped(body, 10 * 1024)).rejects.toBeInstanceOf(BodyTooLargeError);
    expect(body.destroyed).toBe(true);
    expect(produced).toBeLessThan(20);
  });
  it('refuses a declared length over the cap before reading', async () => {
    const body = Readable.from([Buffer.from('x')]);
    await expect(readCapped(body, 4, '5000')).rejects.toThrow('larger than 4 bytes');
    expect(body.destroyed).toBe(true);
  });
});
