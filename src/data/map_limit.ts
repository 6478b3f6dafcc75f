/**
 * Default number of files read/decoded at once: twice libuv's pool (UV_THREADPOOL_SIZE, default 4),
 * where sharp decodes and files are read, so the pool stays busy while JavaScript handles finished
 * files (the PNG fast path runs in JS).
 */
export const DEFAULT_CONCURRENCY = 2 * (Number(process.env.UV_THREADPOOL_SIZE) || 4);

/**
 * `fn` over `items` with at most `limit` calls in flight; results in item order. The first
 * rejection rejects the whole call (no new calls start after it).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
