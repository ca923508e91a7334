import { getLlama, type Token } from 'node-llama-cpp';

/**
 * Ids of the tokens that are not valid UTF-8 on their own (the byte tokens 0x80-0xFF of a
 * byte-fallback vocabulary), read from the model's vocabulary alone (no weights loaded).
 *
 * llama-server's /completion stream in the shipped release parses the generated text at every
 * token and fails the request once that text is not valid UTF-8, which random-weight models such
 * as the shape-equivalent ones produce; the peer benchmark bans these tokens on its side.
 */
export async function invalidUtf8Tokens(modelFile: string): Promise<number[]> {
  const llama = await getLlama({ gpu: false, build: 'never' });
  const model = await llama.loadModel({ modelPath: modelFile, vocabOnly: true });
  try {
    const tokens = (model.fileInfo.metadata.tokenizer as { ggml?: { tokens?: readonly unknown[] } }).ggml?.tokens ?? [];
    const invalid: number[] = [];
    for (let id = 0; id < tokens.length; id++) {
      if (model.detokenize([id as Token], true).includes('\uFFFD')) invalid.push(id);
    }
    return invalid;
  } finally {
    await model.dispose();
    await llama.dispose();
  }
}
