import { describe, expect, it } from 'vitest';
import { SignetError } from '../../../src/errors.js';
import { logToRekor } from '../../../src/signing/tlog.js';
import type { RekorClient, RekorLogEntry } from '../../../src/transparency/rekor.js';

const entry: RekorLogEntry = { uuid: 'u', body: '', integratedTime: 5, logIndex: 9, logID: 'l', signedEntryTimestamp: 's', existing: false };
const rekor = (impl: () => Promise<RekorLogEntry>) => ({ createEntry: impl }) as unknown as RekorClient;

describe("a rule's Rekor policy", () => {
  it('logged / existing come from Rekor; the check runs on the entry', async () => {
    expect((await logToRekor({ rekor: rekor(async () => entry), required: true }, {}, () => undefined)).status).toEqual({
      status: 'logged',
      logIndex: 9,
      uuid: 'u',
      integratedTime: 5,
    });
    expect((await logToRekor({ rekor: rekor(async () => ({ ...entry, existing: true })), required: true }, {}, () => undefined)).status.status).toBe(
      'existing',
    );
  });
  it('required: every Rekor failure propagates (unavailable is retryable, rejected is not)', async () => {
    const down = new SignetError('REKOR_UNAVAILABLE', 'down');
    await expect(logToRekor({ rekor: rekor(async () => Promise.reject(down)), required: true }, {}, () => undefined)).rejects.toBe(down);
    const bad = () => {
      throw new SignetError('REKOR_REJECTED', 'entry does not match');
    };
    await expect(logToRekor({ rekor: rekor(async () => entry), required: true }, {}, bad)).rejects.toMatchObject({ code: 'REKOR_REJECTED' });
  });
  it('not required: Rekor failures become status unavailable with the reason; other errors still propagate', async () => {
    const down = new SignetError('REKOR_UNAVAILABLE', 'rekor x unreachable');
    const r = await logToRekor({ rekor: rekor(async () => Promise.reject(down)), required: false }, {}, () => undefined);
    expect(r).toEqual({ status: { status: 'unavailable', error: 'REKOR_UNAVAILABLE: rekor x unreachable' } });
    const rejected = await logToRekor({ rekor: rekor(async () => entry), required: false }, {}, () => {
      throw new SignetError('REKOR_REJECTED', 'bad SET');
    });
    expect(rejected.status.status).toBe('unavailable');
    await expect(logToRekor({ rekor: rekor(async () => Promise.reject(new Error('bug'))), required: false }, {}, () => undefined)).rejects.toThrow('bug');
  });
});
