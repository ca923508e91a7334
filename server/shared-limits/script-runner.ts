import { ReplyError } from 'ioredis';
import { ADMIT, CHARGE, PUBLISH, RESERVE } from './lua-scripts.js';
import type { RedisLink } from './redis-link.js';
import type { SharedLimit } from './types.js';

const SCRIPTS = { admit: { keys: 3, lua: ADMIT }, reserve: { keys: 3, lua: RESERVE }, charge: { keys: 1, lua: CHARGE }, publish: { keys: 2, lua: PUBLISH } } as const;

export type ScriptName = keyof typeof SCRIPTS;

/** The Redis commands the scripts become (EVALSHA, falling back to EVAL once after a Redis restart). */
type ScriptCommands = Record<ScriptName, (...keysAndArgs: (string | number)[]) => Promise<unknown>>;

/**
 * Runs the shared-limit scripts over the link: one command, one round trip (commands issued in
 * the same tick share one). A failed command marks the link down, so the service falls back to
 * local limits instead of waiting on Redis again.
 */
export class ScriptRunner {
  private readonly commands: ScriptCommands;
  /** Requests and connections refused by a shared limit (after this replica's own view let them through). */
  readonly refusals: Record<SharedLimit, number> = { requests: 0, tokens: 0, streams: 0, connections: 0 };

  constructor(
    private readonly link: RedisLink,
    /** This replica's name in the count hashes. */
    readonly replica: string,
    /** How long a replica's published counts live without being refreshed. */
    readonly leaseMs: number,
  ) {
    for (const [name, script] of Object.entries(SCRIPTS)) link.client.defineCommand(name, { numberOfKeys: script.keys, lua: script.lua });
    this.commands = link.client as unknown as ScriptCommands;
  }

  /** True while Redis answers. */
  get shared(): boolean {
    return this.link.shared;
  }

  /** The script's reply, or undefined when Redis is unreachable; a promise that rejects when the command failed. */
  run(name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> | undefined {
    if (!this.link.shared) return undefined;
    return this.commands[name](...keys, ...args).catch((error: unknown) => {
      // Redis answered with an error (a bad key type, say): Redis itself is there.
      if (error instanceof ReplyError) this.link.rejected(error as Error, name);
      else this.link.failed(error);
      throw error;
    });
  }
}
