import type { LlamaModel, Token } from 'node-llama-cpp';

const REPLACEMENT = '\uFFFD';
/** A UTF-8 character spans at most 4 byte tokens; past that a replacement char is real. */
const MAX_HELD_TOKENS = 4;
/** Tokens of left context given to the detokenizer so leading spaces come out right. */
const CONTEXT_TOKENS = 4;

/**
 * Turns generated tokens into text without ever splitting a multi-byte UTF-8 character:
 * tokens whose text ends in an incomplete character are held until the character completes.
 */
export class TokenTextDecoder {
  private held: Token[] = [];
  private context: Token[];

  constructor(private readonly model: LlamaModel, precedingTokens: readonly Token[]) {
    this.context = precedingTokens.slice(-CONTEXT_TOKENS);
  }

  /** Adds one token; returns the text that is now complete (often the token's own text, or ''). */
  push(token: Token): string {
    this.held.push(token);
    const text = this.model.detokenize(this.held, false, this.context);
    if (text.endsWith(REPLACEMENT) && this.held.length < MAX_HELD_TOKENS) return '';
    this.release();
    return text;
  }

  /** Returns whatever is still held (at the end of a generation). */
  flush(): string {
    if (this.held.length === 0) return '';
    const text = this.model.detokenize(this.held, false, this.context);
    this.release();
    return text;
  }

  private release(): void {
    this.context = this.held.length >= CONTEXT_TOKENS ? this.held.slice(-CONTEXT_TOKENS) : this.context.concat(this.held).slice(-CONTEXT_TOKENS);
    this.held = [];
  }
}
