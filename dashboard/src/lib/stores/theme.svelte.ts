/// <reference types="svelte" />

export type ThemeMode = 'system' | 'light' | 'dark';
export type Theme = 'light' | 'dark';

export const THEME_KEY = 'llm-stream.theme';
const MODES: readonly ThemeMode[] = ['system', 'light', 'dark'];

/** The part of `matchMedia('(prefers-color-scheme: dark)')` the store listens to. */
export interface DarkQuery {
  matches: boolean;
  addEventListener(type: 'change', listener: (event: { matches: boolean }) => void): void;
}

/** Light or dark: follows the system unless the user picked one (remembered in localStorage). */
export class ThemeStore {
  mode = $state<ThemeMode>('system');
  systemDark = $state(false);
  resolved: Theme = $derived(this.mode === 'system' ? (this.systemDark ? 'dark' : 'light') : this.mode);

  constructor(
    private readonly storage?: Pick<Storage, 'getItem' | 'setItem'>,
    query?: DarkQuery,
  ) {
    const saved = storage?.getItem(THEME_KEY);
    if (saved && (MODES as readonly string[]).includes(saved)) this.mode = saved as ThemeMode;
    if (query) {
      this.systemDark = query.matches;
      query.addEventListener('change', (event) => (this.systemDark = event.matches));
    }
  }

  set(mode: ThemeMode): void {
    this.mode = mode;
    this.storage?.setItem(THEME_KEY, mode);
  }

  /** The toggle: switches to the opposite of what is shown now. */
  toggle(): void {
    this.set(this.resolved === 'dark' ? 'light' : 'dark');
  }
}
