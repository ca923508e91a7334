/**
 * Joins text that arrives faster than one frame per window into fewer `tok` frames. A model on
 * a CPU core can produce a token every half millisecond; a frame per token then costs the server,
 * the network and above all the client more than the text is worth, and no reader sees the
 * difference of a couple of milliseconds.
 *
 * The first piece goes out at once, so time to first token is untouched, and so does every piece
 * of a stream slower than the window. A piece that comes within the window of the previous frame
 * is held and goes out with the first piece after the window, so a fast stream costs no extra
 * wake-ups. A guard timer, armed while text is held and normally cleared before it fires, covers a
 * stall: held text goes out at the latest two windows after the previous frame.
 */
export class TextCoalescer {
  private held = '';
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private guard: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly windowMs: number,
    private readonly send: (text: string) => void,
  ) {}

  /** Takes the next piece of text; sends it now or holds it for the next frame. */
  push(piece: string): void {
    this.held += piece;
    const now = performance.now();
    const sinceSent = now - this.lastSentAt;
    if (sinceSent >= this.windowMs) return this.flush(now);
    this.guard ??= setTimeout(() => this.flush(), 2 * this.windowMs - sinceSent);
  }

  /** Sends whatever is held; called before anything else is sent for the request. */
  flush(now = performance.now()): void {
    if (this.guard !== undefined) {
      clearTimeout(this.guard);
      this.guard = undefined;
    }
    if (this.held.length === 0) return;
    const text = this.held;
    this.held = '';
    this.lastSentAt = now;
    this.send(text);
  }
}
