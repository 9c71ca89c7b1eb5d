/**
 * A `fetch` whose response bodies are capped, for SDKs that take a fetch implementation (gaxios,
 * under google-auth-library): the same rule as readCapped for bodies signet reads itself. A body
 * that declares or streams more than `limit` bytes fails with BodyTooLargeError (the stream is
 * cancelled), so the SDK never buffers it.
 */
import { BodyTooLargeError } from './read.js';

export function cappedFetch(limit: number, inner: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const res = await inner(input, init);
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > limit) {
      await res.body?.cancel().catch(() => undefined);
      throw new BodyTooLargeError(limit);
    }
    if (!res.body) return res;
    let size = 0;
    const body = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          size += chunk.byteLength;
          if (size > limit) ctl.error(new BodyTooLargeError(limit));
          else ctl.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}
