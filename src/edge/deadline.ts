/**
 * An overall deadline for a call that takes no AbortSignal (some cloud SDKs): the promise rejects
 * with `onTimeout()` after `ms` when the call has not settled. The call itself is not cancelled
 * (the SDK offers no way to), but the job that waits on it is released.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
