/**
 * A token bucket per integration: `requestsPerSecond` refill, `burst` capacity. A request over the
 * limit gets 429 with Retry-After, so a misbehaving or hostile sender cannot flood Redis.
 */
export interface RateLimit {
  requestsPerSecond: number;
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = limit.burst;
    this.last = now();
  }

  /** Takes a token; returns 0 when allowed, else the seconds until one is available. */
  take(): number {
    const t = this.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((t - this.last) / 1000) * this.limit.requestsPerSecond);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / this.limit.requestsPerSecond;
  }
}
