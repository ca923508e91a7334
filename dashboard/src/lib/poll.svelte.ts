/// <reference types="svelte" />
import { untrack } from 'svelte';

/** The timer functions polling uses; the global ones by default, fakes in tests. */
export interface PollTimers {
  setInterval(handler: () => void, ms: number): unknown;
  clearInterval(timer: never): void;
}

/** Calls `run` now, then every `intervalMs`, until the returned function is called. */
export function startPolling(run: () => unknown, intervalMs: number, timers: PollTimers = globalThis): () => void {
  void run();
  const timer = timers.setInterval(() => void run(), intervalMs);
  return () => timers.clearInterval(timer as never);
}

/**
 * For a page: calls `run` (a store's refresh) when the component mounts and every `intervalMs`
 * while it stays mounted. Whatever `run` reads is not tracked, so state it touches never restarts
 * the polling.
 */
export function poll(run: () => unknown, intervalMs: number): void {
  $effect(() => untrack(() => startPolling(run, intervalMs)));
}
