/** Svelte 5 with runes everywhere; TypeScript in components needs no preprocessor. */
export default {
  compilerOptions: { runes: true },
};
