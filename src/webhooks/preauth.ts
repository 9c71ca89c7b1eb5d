/**
 * The cap on webhook bodies read at once before their sender is authenticated (server.maxPreAuthBodies):
 * what an anonymous flood can make the receiver hold is this many bodies of bodyLimitBytes each,
 * for bodyTimeoutMs at most.
 */
import type { Gauge } from 'prom-client';

export class PreAuthSlots {
  private used = 0;
  constructor(
    private readonly max: number,
    private readonly gauge?: Gauge,
  ) {}

  /** A slot's release function, or undefined when every slot is taken. */
  tryAcquire(): (() => void) | undefined {
    if (this.used >= this.max) return undefined;
    this.used++;
    this.gauge?.set(this.used);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
      this.gauge?.set(this.used);
    };
  }
}
