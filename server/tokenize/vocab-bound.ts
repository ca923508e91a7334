/**
 * The most UTF-8 bytes one token of a vocabulary can stand for, read from its pieces as the GGUF
 * stores them. Each stored piece takes at least as many bytes as the text it decodes to (SPM writes
 * a space as the 3-byte `▁`, byte-level BPE writes each byte as a 1- or 2-byte character, byte
 * tokens are spelled `<0xNN>`), so this is a safe upper bound.
 */
export function maxTokenBytes(pieces: readonly string[]): number {
  let max = 1;
  for (const piece of pieces) max = Math.max(max, Buffer.byteLength(piece));
  return max;
}

/**
 * A lower bound of the tokens `text` becomes: checking it costs one pass over the string instead
 * of tokenizing, so a prompt that cannot fit a context is refused before any tokenizer runs.
 */
export function minTokenCount(text: string, bytesPerToken: number): number {
  return Math.ceil(Buffer.byteLength(text) / bytesPerToken);
}
