import { describe, expect, it } from 'vitest';
import { ManifestError, parseManifest } from '../../server/pool/manifest.js';
import { SAMPLING_DEFAULTS } from '../../server/pool/sampling-defaults.js';

/* A model's manifest entry may set the repetition penalties its requests get by default. */

describe('manifest sampling penalties', () => {
  it('reads the penalties and how far back they look', () => {
    const manifest = parseManifest({ models: [{ name: 'chat', sampling: { repeatPenalty: 1.1, frequencyPenalty: 0.2, presencePenalty: -0.5, penaltyLastTokens: 128 } }] });
    expect(manifest.models[0]!.sampling).toEqual({ repeatPenalty: 1.1, frequencyPenalty: 0.2, presencePenalty: -0.5, penaltyLastTokens: 128 });
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a repeat penalty of 0', { repeatPenalty: 0 }, /"repeatPenalty" must be a number from 0.1 to 10/],
    ['a frequency penalty past 2', { frequencyPenalty: 2.5 }, /"frequencyPenalty" must be a number from -2 to 2/],
    ['a fractional window', { penaltyLastTokens: 10.5 }, /"penaltyLastTokens" must be an integer from 0 to 4096/],
    ['a penalty as text', { presencePenalty: '1' }, /"presencePenalty" must be a number/],
  ])('refuses %s, naming the entry and the field', (_name, sampling, message) => {
    expect(() => parseManifest({ models: [{ name: 'chat', sampling }] })).toThrow(ManifestError);
    expect(() => parseManifest({ models: [{ name: 'chat', sampling }] })).toThrow(message);
  });

  it('leaves the penalties off by default, looking at the last 64 tokens', () => {
    expect(SAMPLING_DEFAULTS).toMatchObject({ repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, penaltyLastTokens: 64 });
  });
});
