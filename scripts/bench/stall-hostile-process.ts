/**
 * Runs the stall benchmark's hostile connections in a process of their own, so the work of
 * sending megabytes of prompts (the client masks every byte it sends) does not delay the
 * victim's and the prober's own clocks. Told the target and frame limit in argv as JSON; prints
 * its HostileStats as JSON on stdout when stdin closes or SIGTERM comes.
 */
import { Hostile, hostileTemplates, newHostileStats } from './stall-hostile.js';

export interface HostileJob {
  streamUrl: string;
  apiKey: string | undefined;
  rps: number | undefined;
  count: number;
  maxFrameBytes: number;
  /** Characters of each prompt. */
  chars: number;
}

const job = JSON.parse(process.argv[2]!) as HostileJob;
const templates = hostileTemplates(job.chars, job.maxFrameBytes).templates;
const stats = newHostileStats();
const hostiles = Array.from({ length: job.count }, () => new Hostile({ streamUrl: job.streamUrl, apiKey: job.apiKey, rps: job.rps }, templates, stats));

let stopped = false;
const stop = (): void => {
  if (stopped) return;
  stopped = true;
  for (const hostile of hostiles) hostile.stop();
  process.stdout.write(`${JSON.stringify(stats)}\n`, () => process.exit(0));
};
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
