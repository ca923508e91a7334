/// <reference types="svelte" />

export const PAGES = [
  { path: '/', title: 'Overview' },
  { path: '/models', title: 'Models' },
  { path: '/connections', title: 'Connections' },
  { path: '/playground', title: 'Playground' },
  { path: '/errors', title: 'Errors' },
] as const;

export type PagePath = (typeof PAGES)[number]['path'];

/** Maps a location path to a page; unknown paths show the overview. */
export function pageOf(pathname: string): PagePath {
  const trimmed = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  return PAGES.find((page) => page.path === trimmed)?.path ?? '/';
}

/** Client-side routes on the History API (the server answers every page path with index.html). */
export class RouterStore {
  page = $state<PagePath>('/');

  constructor(private readonly win?: Pick<Window, 'location' | 'history' | 'addEventListener'>) {
    if (win) {
      this.page = pageOf(win.location.pathname);
      win.addEventListener('popstate', () => (this.page = pageOf(win.location.pathname)));
    }
  }

  navigate(path: PagePath): void {
    if (path === this.page) return;
    this.page = path;
    this.win?.history.pushState(null, '', path);
  }
}
