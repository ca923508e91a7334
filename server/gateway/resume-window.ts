import type { ServerFrame } from '../../protocol/index.js';

/**
 * Memory a kept frame is counted for besides its text: the object, its fields and its slot here
 * (measured: a tok frame of 8 characters takes about 107 bytes of heap; npm run bench:resume).
 */
export const FRAME_OVERHEAD_BYTES = 96;
/** Trimmed slots are compacted away once there are this many and they are most of the array. */
const COMPACT_AFTER = 256;

/** Estimated memory of one kept frame; strings count two bytes a character (the most V8 takes). */
export function frameBytes(frame: ServerFrame): number {
  switch (frame.t) {
    case 'tok':
      return FRAME_OVERHEAD_BYTES + 2 * frame.text.length;
    case 'err':
      return 2 * FRAME_OVERHEAD_BYTES + 2 * frame.message.length;
    case 'end':
      // With its usage and timings objects.
      return 3 * FRAME_OVERHEAD_BYTES;
    default:
      return FRAME_OVERHEAD_BYTES;
  }
}

/**
 * The frames of one request, numbered from seq 1 without gaps, oldest first: what a resume replays.
 * The oldest may be trimmed to free memory; a resume from before them is then refused.
 */
export class FrameWindow {
  private readonly frames: (ServerFrame | undefined)[] = [];
  private readonly sizes: number[] = [];
  /** Index of the oldest kept frame; the slots before it were trimmed. */
  private head = 0;
  /** Seq of the frame at `head`. */
  private first = 1;
  /** Estimated memory of the kept frames. */
  bytes = 0;

  /** Seq of the oldest kept frame (lastSeq + 1 when none is kept). */
  get firstSeq(): number {
    return this.first;
  }

  /** Seq of the newest frame pushed (0 before the first). */
  get lastSeq(): number {
    return this.first + (this.frames.length - this.head) - 1;
  }

  /** Keeps the next frame (its seq is lastSeq + 1); returns the bytes it is counted for. */
  push(frame: ServerFrame): number {
    const size = frameBytes(frame);
    this.frames.push(frame);
    this.sizes.push(size);
    this.bytes += size;
    return size;
  }

  /** The kept frame with this seq, or undefined when it was trimmed or never pushed. */
  at(seq: number): ServerFrame | undefined {
    if (seq < this.first || seq > this.lastSeq) return undefined;
    return this.frames[this.head + (seq - this.first)];
  }

  /**
   * Drops the oldest frames, only those before `beforeSeq`, until `wanted` bytes are freed or none
   * is left to drop; returns the bytes freed.
   */
  trim(wanted: number, beforeSeq: number): number {
    let freed = 0;
    while (freed < wanted && this.head < this.frames.length && this.first < beforeSeq) {
      freed += this.sizes[this.head]!;
      this.frames[this.head] = undefined;
      this.head++;
      this.first++;
    }
    this.bytes -= freed;
    if (this.head >= COMPACT_AFTER && this.head * 2 >= this.frames.length) {
      this.frames.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
    return freed;
  }

  /** Drops every frame; returns the bytes freed. Seqs go on from where they were. */
  clear(): number {
    return this.trim(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }
}
