import { ServerDiedError, type PeerServer, type SideName } from './peer-side.js';

/*
 * Paired alternating rounds: round r runs ours then theirs when r is even, theirs then ours when
 * odd (ours, theirs, theirs, ours, ...), so a drift of this shared machine hits both sides alike
 * and each round's two runs, back to back, can be compared as a pair.
 */

/** The two servers of one configuration. */
export interface ServerPair {
  ours: PeerServer;
  theirs: PeerServer;
}

/** Every measured run of one measurement, by side; index = round. */
export interface Paired<T> {
  ours: T[];
  theirs: T[];
}

export interface RoundOptions {
  rounds: number;
  /** Unmeasured runs per side before the rounds (each side's first runs are slow). */
  warmups: number;
  /** What is measured, for progress lines and error messages. */
  label: string;
  /** Longest a single run may take before the benchmark stops. */
  deadlineMs: number;
}

/**
 * Runs `measure` on both servers in paired alternating rounds after the warm-ups (rounds -1,
 * -2, ... for those); every run is raced against either server dying and the deadline.
 */
export async function pairedRounds<T>(pair: ServerPair, options: RoundOptions, measure: (server: PeerServer, round: number) => Promise<T>): Promise<Paired<T>> {
  const runs: Paired<T> = { ours: [], theirs: [] };
  for (let warmup = 1; warmup <= options.warmups; warmup++) {
    for (const side of ['ours', 'theirs'] as const) await guarded(pair, `${options.label} (warm-up, ${side})`, options.deadlineMs, () => measure(pair[side], -warmup));
  }
  for (let round = 0; round < options.rounds; round++) {
    const order: SideName[] = round % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours'];
    for (const side of order) runs[side].push(await guarded(pair, `${options.label} (round ${round + 1}, ${side})`, options.deadlineMs, () => measure(pair[side], round)));
  }
  process.stderr.write(`  ${options.label}: ${options.rounds} rounds done\n`);
  return runs;
}

/** Runs `work`, failing at once if either server of the pair dies, or after `deadlineMs`. */
export async function guarded<T>(pair: ServerPair, label: string, deadlineMs: number, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} took longer than ${Math.round(deadlineMs / 1000)} s`)), deadlineMs);
  });
  try {
    return await Promise.race([work(), pair.ours.died, pair.theirs.died, deadline]);
  } catch (error) {
    // A dying server first fails the streams (a lost connection): report the death, if it comes.
    const death = await Promise.race([pair.ours.died, pair.theirs.died, new Promise((resolve) => setTimeout(resolve, 1000))]).catch((died: unknown) => died);
    const reported = death instanceof ServerDiedError ? death : error;
    if (reported instanceof Error && !reported.message.startsWith(label)) reported.message = `${label}: ${reported.message}`;
    throw reported;
  } finally {
    clearTimeout(timer);
  }
}
