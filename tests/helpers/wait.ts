/*
 * Waiting in tests: for a condition or an event, never for a stretch of time. A deadline is only a
 * safety net, so that a test fails with a message naming what never happened instead of hanging.
 */

/**
 * Polls `check` until it returns a truthy value, which it resolves with. For state that has no
 * event to wait on (server-side counts, files, other processes); `what` names it in the failure
 * and may be a function, read at the deadline, to show the state then.
 */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10_000, what: string | (() => string) = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `promise`, or a rejection naming `what` when it has not settled within `timeoutMs` (a safety net). */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
