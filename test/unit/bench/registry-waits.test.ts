import { describe, expect, it } from 'vitest';
import { waitsBetween, type RegistryWaits } from '../../../bench/lib/signet-proc.js';

const O = 'http://127.0.0.1:5000';

describe('bench: what the worker waited on the registry between two probe snapshots', () => {
  it('means by kind and in-flight samples come from the difference of the snapshots only', () => {
    const before: RegistryWaits = {
      waits: { [O]: { 'GET manifest': { n: 10, ms: 1000 } } },
      inflight: { [O]: { '0': 100, '3': 5 } },
    };
    const after: RegistryWaits = {
      waits: {
        [O]: { 'GET manifest': { n: 14, ms: 1200 }, 'PUT sig-manifest': { n: 4, ms: 400 } },
        'http://other': { 'GET manifest': { n: 99, ms: 9999 } },
      },
      inflight: { [O]: { '0': 101, '3': 6, '7': 3, '8': 1 } },
    };
    const w = waitsBetween(after, before, O, 4);
    expect(w.meanMsByKind).toEqual({ 'GET manifest': 50, 'PUT sig-manifest': 100 });
    expect(w.msPerImage).toBe(150); // (200 + 400) / 4 images
    // samples in the window: 0 x1, 3 x1, 7 x3, 8 x1 -> median 7
    expect(w.inFlightMedian).toBe(7);
    expect(w.inFlightMax).toBe(8);
  });

  it('an origin the process never called gives no kinds and no samples', () => {
    const empty: RegistryWaits = { waits: {}, inflight: {} };
    const w = waitsBetween(empty, empty, O, 0);
    expect(w.meanMsByKind).toEqual({});
    expect(w.msPerImage).toBe(0);
    expect(w.inFlightMedian).toBeNaN();
    expect(w.inFlightMax).toBeNaN();
  });
});
