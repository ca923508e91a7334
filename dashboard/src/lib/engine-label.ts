import type { EngineInfo } from '../../../protocol/index.js';
import { NONE } from './format.js';

/**
 * The overview's engine tile: the build as its value; backend, CPU library and llama.cpp release
 * below, short enough for the tile's width.
 */
export function engineLabel(engine: EngineInfo | undefined): { value: string; sub: string } {
  if (!engine) return { value: NONE, sub: '' };
  return { value: engine.build, sub: `${engine.backend} · ${engine.cpuVariant} · ${engine.llamaCppRelease}` };
}
