/// <reference types="svelte" />

/** A ticking `now` for ages and countdowns; one timer for the whole app. */
export class ClockStore {
  now = $state(Date.now());
  private timer: ReturnType<typeof setInterval> | undefined;

  start(intervalMs = 1000): void {
    this.stop();
    this.now = Date.now();
    this.timer = setInterval(() => (this.now = Date.now()), intervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
