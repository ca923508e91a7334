/** A prompt sent to the tokenizer worker. */
export interface TokenizeJob {
  id: number;
  /** Model file and the version of it the caller holds. */
  path: string;
  fingerprint: string;
  text: string;
}

/** The worker's answer to one job. */
export type TokenizeResult = { id: number; ok: true; tokens: Uint32Array } | { id: number; ok: false; message: string };
