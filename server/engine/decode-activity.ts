/** How prompt evaluation is split so that it shares the engine with running streams. */
export interface PrefillOptions {
  /** Prompt tokens per chunk while other sequences of the model are generating. */
  chunkTokens: number;
  /** Prompt tokens per chunk when no other sequence is generating (the context's batch size). */
  soloChunkTokens: number;
}

/**
 * Coordinates the sequences of one context so that their work shares native batches, as a
 * continuous-batching server does:
 * - every decode step and prompt chunk starts through `step()`, which holds it until no step of
 *   the context is in flight any more, then starts all held steps in the same turn; the engine
 *   then evaluates them in one batch instead of letting the slowest sampler's sequence fall into
 *   the next batch alone;
 * - it counts the sequences that are generating, so a prompt takes small chunks while others
 *   decode (their steps run between the chunks) and whole batches when it is alone.
 */
export class DecodeActivity {
  private generating = 0;
  private inFlight = 0;
  private held: (() => void)[] = [];
  private flushScheduled = false;

  constructor(private readonly options: PrefillOptions) {}

  /** Sequences generating right now. */
  get active(): number {
    return this.generating;
  }

  /** Marks one more sequence as generating; call the returned function once when it stops. */
  enter(): () => void {
    this.generating++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.generating--;
    };
  }

  /** Tokens the next prompt chunk may take: small while anyone decodes, a whole batch otherwise. */
  chunkSize(): number {
    return this.generating > 0 ? this.options.chunkTokens : this.options.soloChunkTokens;
  }

  /**
   * Starts `work` (one decode step or prompt chunk) together with the other sequences' next work:
   * once every step in flight has returned. Resolves or rejects as `work` does.
   */
  step<T>(work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.held.push(() => {
        this.inFlight++;
        work().then(
          (value) => {
            this.returned();
            resolve(value);
          },
          (error: unknown) => {
            this.returned();
            reject(error);
          },
        );
      });
      if (this.inFlight === 0) this.scheduleFlush();
    });
  }

  private returned(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.held.length > 0) this.scheduleFlush();
  }

  /**
   * Starts held work on the next turn: the sequence whose step just returned handles its token
   * and holds its next step first, so it joins the same batch.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.inFlight > 0) return;
      const held = this.held;
      this.held = [];
      for (const start of held) start();
    });
  }
}
