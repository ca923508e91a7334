/**
 * A health checker for the stall benchmark: GET /healthz every INTERVAL ms, one request at a time.
 * A probe that is late holds back the ones scheduled after it, so each of those counts as if it had
 * been sent on time and answered with that late answer (latency from its scheduled time): a 5 s
 * freeze yields 250 samples from 5 s down to 0, not a single 5 s one.
 */

/** What the prober records into (the current phase's figures). */
export interface ProbeSamples {
  healthzMs: number[];
  /** Probes answered with an error or not at all (one still open at the stop only counts in healthzMs). */
  healthzFailed: number;
}

export class HealthProber {
  private readonly stopper = new AbortController();
  private readonly done: Promise<void>;

  constructor(private readonly url: string, private readonly intervalMs: number, private readonly sink: () => ProbeSamples | undefined) {
    this.done = this.loop();
  }

  /** Stops probing; a probe still in flight counts with its latency up to now. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await this.done;
  }

  private async loop(): Promise<void> {
    const signal = this.stopper.signal;
    let slot = performance.now();
    while (!signal.aborted) {
      const wait = slot - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (signal.aborted) return;
      const answered = await fetch(this.url, { signal }).then((response) => response.arrayBuffer().then(() => response.ok), () => false);
      const now = performance.now();
      const samples = this.sink();
      // The probe sent at `slot` and every slot it held back get this answer's time.
      for (; slot <= now; slot += this.intervalMs) samples?.healthzMs.push(now - slot);
      if (!answered && !signal.aborted && samples) samples.healthzFailed++;
    }
  }
}
