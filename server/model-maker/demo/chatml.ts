/** ChatML's turn markers, control tokens of the demo vocabulary. */
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';

/**
 * The standard ChatML Jinja template (as shipped with ChatML models), stored in tokenizer.chat_template;
 * node-llama-cpp's resolveChatWrapper recognises it as ChatML.
 */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export class ChatCorpusError extends Error {
  override name = 'ChatCorpusError';
}

const MESSAGE = /<\|im_start\|>(system|user|assistant)\n([\s\S]*?)<\|im_end\|>\n/y;

/**
 * Parses conversations written in ChatML, separated by blank lines. Each one must be a run of
 * `<|im_start|>role\ncontent<|im_end|>\n` messages that ends with an assistant reply, so that what the
 * model learns is exactly what the template renders.
 */
export function parseChatCorpus(text: string): ChatMessage[][] {
  const source = text.replaceAll('\r\n', '\n');
  const conversations: ChatMessage[][] = [];
  let current: ChatMessage[] = [];
  let at = 0;
  const close = () => {
    if (current.length === 0) return;
    if (current.at(-1)!.role !== 'assistant') throw new ChatCorpusError(`conversation ${conversations.length + 1} does not end with an assistant reply`);
    conversations.push(current);
    current = [];
  };
  while (at < source.length) {
    if (source[at] === '\n') {
      close();
      at++;
      continue;
    }
    MESSAGE.lastIndex = at;
    const match = MESSAGE.exec(source);
    if (match === null) throw new ChatCorpusError(`malformed ChatML at line ${source.slice(0, at).split('\n').length}`);
    const content = match[2]!;
    if (content.includes(IM_START) || content.trim() !== content || content.length === 0) {
      throw new ChatCorpusError(`message at line ${source.slice(0, at).split('\n').length} is empty, padded or holds a marker`);
    }
    current.push({ role: match[1] as ChatRole, content });
    at = MESSAGE.lastIndex;
  }
  close();
  return conversations;
}

/** A conversation as CHATML_TEMPLATE renders it (without the generation prompt). */
export function renderChatML(messages: readonly ChatMessage[]): string {
  return messages.map(({ role, content }) => `${IM_START}${role}\n${content}${IM_END}\n`).join('');
}
