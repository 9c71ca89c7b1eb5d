/** What tests that drive SignQueue directly (no receiver) enqueue, and the worker settings it needs. */
import type { Config } from '../../src/config/schema.js';
import type { SignJobData } from '../../src/queue/sign-queue.js';

export const queueWorkerConfig: Config['worker'] = {
  concurrency: 1,
  attempts: 3,
  backoffMs: 100,
  keepFailed: 10,
  keepCompleted: 10,
  lockDurationMs: 30000,
  stalledIntervalMs: 30000,
  shutdownTimeoutMs: 1000,
};

/** A push of `repository:tag` on reg.example, as the receiver would queue it. */
export function signJob(tag: string, repository = 'team/app'): SignJobData {
  return {
    registry: 'reg.example',
    requestId: `req-${tag}`,
    event: { integration: 'local', host: 'reg.example', repository, tag, receivedAt: new Date().toISOString() },
  } as SignJobData;
}
