import type { SamplingDefaults } from './manifest.js';

/**
 * Sampling used when neither the request nor the model's manifest entry says otherwise: llama.cpp's
 * defaults, repetition penalties off.
 */
export const SAMPLING_DEFAULTS: SamplingDefaults = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
  penaltyLastTokens: 64,
};
