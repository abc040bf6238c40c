/**
 * Walk several streams of batches in step (the same images through two networks, or two models), so
 * that CKA accumulators see both sides of each batch without holding whole feature sets. Ends when
 * any stream ends; an error in one stream rejects (the others are closed).
 */
export async function* zipStreams<T>(streams: readonly AsyncIterable<T>[]): AsyncGenerator<T[], void, undefined> {
  const its = streams.map((s) => s[Symbol.asyncIterator]());
  try {
    while (true) {
      const next = await Promise.all(its.map((it) => it.next()));
      if (next.some((r) => r.done)) return;
      yield next.map((r) => r.value as T);
    }
  } finally {
    await Promise.all(its.map((it) => (it.return ? it.return(undefined).catch(() => undefined) : undefined)));
  }
}
