/**
 * Finds stop sequences in streamed text. Text that might be the start of a stop sequence is held
 * back until the next piece shows whether it is, so no part of a stop sequence is ever sent.
 */
export class StopMatcher {
  private held = '';
  /** The stop sequence that matched, once one did. */
  matched: string | undefined;

  constructor(private readonly stops: readonly string[]) {}

  /** Feeds a piece of text; returns what may be sent now and whether a stop sequence matched (`matched` says which). */
  push(piece: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text: piece, stopped: false };
    const buffer = this.held + piece;
    let cut = -1;
    let matched = '';
    for (const stop of this.stops) {
      const at = buffer.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        matched = stop;
      }
    }
    if (cut >= 0) {
      this.held = '';
      this.matched = matched;
      return { text: buffer.slice(0, cut), stopped: true };
    }
    const keep = this.longestPendingPrefix(buffer);
    this.held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep), stopped: false };
  }

  /** Returns the held text at the end of a generation. */
  flush(): string {
    const text = this.held;
    this.held = '';
    return text;
  }

  private longestPendingPrefix(buffer: string): number {
    let keep = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, buffer.length); length > keep; length--) {
        if (buffer.endsWith(stop.slice(0, length))) {
          keep = length;
          break;
        }
      }
    }
    return keep;
  }
}
