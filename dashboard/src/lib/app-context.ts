import { getContext, setContext } from 'svelte';
import { connect, type WebSocketConstructor } from '../../../protocol/index.js';
import { createAdminApi, type AdminApi } from './services/admin-api.js';
import { FeedConnection, probeFeed } from './services/feed-connection.js';
import { feedUrl, streamUrl, type Origin } from './services/urls.js';
import { AuthStore } from './stores/auth.svelte.js';
import { ClockStore } from './stores/clock.svelte.js';
import { ConnectionsStore } from './stores/connections.svelte.js';
import { FeedStore } from './stores/feed.svelte.js';
import { ModelsStore } from './stores/models.svelte.js';
import { PlaygroundStore } from './stores/playground.svelte.js';
import { RouterStore } from './stores/router.svelte.js';
import { ThemeStore } from './stores/theme.svelte.js';

/** Every store and service of the dashboard, created once at start-up. */
export interface App {
  api: AdminApi;
  auth: AuthStore;
  feed: FeedStore;
  theme: ThemeStore;
  router: RouterStore;
  clock: ClockStore;
  models: ModelsStore;
  connections: ConnectionsStore;
  playground: PlaygroundStore;
}

/** Wires the stores to the browser and to the server that served the page. */
export function createApp(win: Window & typeof globalThis): App {
  const origin: Origin = { protocol: win.location.protocol, host: win.location.host };
  // `api` and `auth` refer to each other: a 401 signs out, sign-in checks through the API.
  let auth: AuthStore | undefined;
  const api = createAdminApi({ token: () => auth?.token, onUnauthorized: () => auth?.refused() });
  auth = new AuthStore(win.sessionStorage, async (token) => {
    const check = await api.checkToken(token);
    // Without the HTTP admin endpoint the feed's upgrade is the judge.
    if (check === 'unverified') return (await probeFeed(feedUrl(origin), token)) ? 'accepted' : 'refused';
    return check;
  });
  const feed = new FeedStore(
    (token, handlers) =>
      new FeedConnection({
        url: feedUrl(origin),
        token,
        ...handlers,
        isUnauthorized: async () => (await api.checkToken(token)) === 'refused',
      }),
  );
  return {
    api,
    auth,
    feed,
    theme: new ThemeStore(win.localStorage, win.matchMedia('(prefers-color-scheme: dark)')),
    router: new RouterStore(win),
    clock: new ClockStore(),
    // API answers are ordered against feed snapshots by the server time of the newest snapshot.
    models: new ModelsStore(api, () => feed.latest?.ts),
    connections: new ConnectionsStore(api),
    playground: new PlaygroundStore({
      connect: (apiKey) => connect(streamUrl(origin), { WebSocket: win.WebSocket as unknown as WebSocketConstructor, ...(apiKey && { apiKey }) }),
    }),
  };
}

const KEY = Symbol('app');

export function provideApp(app: App): void {
  setContext(KEY, app);
}

export function useApp(): App {
  const app = getContext<App | undefined>(KEY);
  if (!app) throw new Error('useApp() outside the dashboard');
  return app;
}
