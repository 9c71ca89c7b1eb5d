/**
 * The per-registry cap on jobs in flight (src/registry/job-slots.ts): its defaults, and a job
 * over its registry's cap put back for later (moveToDelayed + DelayedError, no attempt used)
 * while jobs of other registries run. The worker wiring is tested on real parts in
 * test/integration/registry-job-slots.test.ts.
 */
import { DelayedError, type Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { maxJobsFor, RegistryJobSlots } from '../../../src/registry/job-slots.js';

const reg = (host: string, maxJobs?: number) => ({ host, ...(maxJobs !== undefined ? { maxJobs } : {}) }) as never;

describe('maxJobsFor', () => {
  it('one registry: the whole worker; several: half of it, at least 1; maxJobs when set', () => {
    expect(maxJobsFor({ registries: [reg('a')], worker: { concurrency: 32 } as never }, 'a')).toBe(32);
    expect(maxJobsFor({ registries: [reg('a'), reg('b')], worker: { concurrency: 32 } as never }, 'a')).toBe(16);
    expect(maxJobsFor({ registries: [reg('a'), reg('b')], worker: { concurrency: 1 } as never }, 'b')).toBe(1);
    expect(maxJobsFor({ registries: [reg('a', 3), reg('b')], worker: { concurrency: 32 } as never }, 'a')).toBe(3);
  });
});

describe('RegistryJobSlots', () => {
  function fakeJob(registry: string, attemptsStarted = 1) {
    const moved: number[] = [];
    const job = {
      data: { registry },
      attemptsStarted,
      attemptsMade: 0,
      moveToDelayed: async (at: number) => void moved.push(at - Date.now()),
    } as unknown as Job<{ registry: string }, string>;
    return { job, moved };
  }

  it('runs jobs up to the cap per registry, puts the next one back, and frees the slot when a job ends', async () => {
    const parkedFor: string[] = [];
    const slots = new RegistryJobSlots(
      { registries: [reg('a', 2), reg('b', 2)], worker: { concurrency: 4 } as never },
      { random: () => 1, onParked: (h) => void parkedFor.push(h) },
    );
    const gates: (() => void)[] = [];
    const run = slots.guard(async (job: Job<{ registry: string }, string>) => {
      await new Promise<void>((r) => gates.push(r));
      return job.data.registry;
    });
    const a1 = run(fakeJob('a').job);
    const a2 = run(fakeJob('a').job);
    const over = fakeJob('a', 3); // started twice before without an attempt: put back for 4 s
    await expect(run(over.job)).rejects.toBeInstanceOf(DelayedError);
    expect(over.moved).toHaveLength(1);
    expect(over.moved[0]).toBeGreaterThan(3900);
    expect(over.moved[0]).toBeLessThanOrEqual(4000);
    const b1 = run(fakeJob('b').job); // another registry still runs
    expect(slots.running('a')).toBe(2);
    expect(slots.running('b')).toBe(1);
    for (const g of gates.splice(0)) g();
    expect(await Promise.all([a1, a2, b1])).toEqual(['a', 'a', 'b']);
    expect(slots.running('a')).toBe(0);
    // a failing job frees its slot too
    const failing = slots.guard(async (): Promise<string> => {
      throw new Error('boom');
    });
    await expect(failing(fakeJob('a').job)).rejects.toThrow('boom');
    expect(slots.running('a')).toBe(0);
    expect(slots.parked).toBe(1);
    expect(parkedFor).toEqual(['a']);
  });

  it('the wait doubles with each time a job was put back, up to 60 s, jittered down to half', async () => {
    const delays = async (random: number, started: number) => {
      const slots = new RegistryJobSlots({ registries: [reg('a', 1)], worker: { concurrency: 1 } as never }, { random: () => random });
      const hold = slots.guard(() => new Promise<string>(() => undefined));
      void hold(fakeJob('a').job);
      const j = fakeJob('a', started);
      await slots
        .guard(async () => 'x')(j.job)
        .catch(() => undefined);
      return Math.round((j.moved[0]! + 5) / 100) * 100;
    };
    expect(await delays(1, 1)).toBe(1000);
    expect(await delays(1, 2)).toBe(2000);
    expect(await delays(1, 30)).toBe(60_000);
    expect(await delays(0, 30)).toBe(30_000);
  });
});
