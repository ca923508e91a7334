import { describe, expect, it, vi } from 'vitest';
import { ConnectError, LlmError, type EndFrame, type GenerateRequest, type ModelInfo } from '../../protocol/index.js';
import { AdminApiError, createAdminApi, type AdminApi } from '../../dashboard/src/lib/services/admin-api.js';
import { AuthStore, TOKEN_KEY } from '../../dashboard/src/lib/stores/auth.svelte.js';
import { ConnectionsStore } from '../../dashboard/src/lib/stores/connections.svelte.js';
import { actionsFor, ModelsStore } from '../../dashboard/src/lib/stores/models.svelte.js';
import { connectFailureText, PlaygroundStore, type PlaygroundClient, type PlaygroundStream } from '../../dashboard/src/lib/stores/playground.svelte.js';
import { pageOf, RouterStore } from '../../dashboard/src/lib/stores/router.svelte.js';
import { THEME_KEY, ThemeStore } from '../../dashboard/src/lib/stores/theme.svelte.js';

function memoryStorage(initial: Record<string, string> = {}) {
  const data = new Map(Object.entries(initial));
  return {
    data,
    getItem: (key: string) => data.get(key) ?? null,
    setItem: (key: string, value: string) => void data.set(key, value),
    removeItem: (key: string) => void data.delete(key),
  };
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('AuthStore', () => {
  it('keeps an accepted token in session storage', async () => {
    const storage = memoryStorage();
    const auth = new AuthStore(storage, async () => 'accepted');
    expect(auth.signedIn).toBe(false);
    expect(await auth.signIn('  s3cret ')).toBe(true);
    expect(auth.token).toBe('s3cret');
    expect(auth.signedIn).toBe(true);
    expect(storage.data.get(TOKEN_KEY)).toBe('s3cret');
    expect(new AuthStore(storage, async () => 'accepted').token).toBe('s3cret'); // a reload of the tab
  });

  it('says so when the server refuses the token, and keeps nothing', async () => {
    const storage = memoryStorage();
    const auth = new AuthStore(storage, async () => 'refused');
    expect(await auth.signIn('wrong')).toBe(false);
    expect(auth.message).toMatch(/wrong admin token/i);
    expect(auth.signedIn).toBe(false);
    expect(storage.data.size).toBe(0);
  });

  it('refuses empty and malformed tokens without asking the server', async () => {
    const verify = vi.fn(async () => 'accepted' as const);
    const auth = new AuthStore(undefined, verify);
    expect(await auth.signIn('')).toBe(false);
    expect(auth.message).toMatch(/enter/i);
    expect(await auth.signIn('has space')).toBe(false);
    expect(auth.message).toMatch(/wrong admin token/i);
    expect(verify).not.toHaveBeenCalled();
  });

  it('shows "checking" while verifying and reports an unreachable server', async () => {
    const pending = deferred<'accepted'>();
    const auth = new AuthStore(undefined, () => pending.promise);
    const signing = auth.signIn('tok');
    expect(auth.checking).toBe(true);
    pending.reject(new AdminApiError(0, 'cannot reach the server (fetch failed)'));
    expect(await signing).toBe(false);
    expect(auth.checking).toBe(false);
    expect(auth.message).toContain('cannot reach the server');
  });

  it('returns to sign-in with a reason when the token stops working', async () => {
    const storage = memoryStorage({ [TOKEN_KEY]: 'old' });
    const auth = new AuthStore(storage, async () => 'accepted');
    auth.refused();
    expect(auth.signedIn).toBe(false);
    expect(auth.message).toMatch(/no longer accepts/);
    expect(storage.data.has(TOKEN_KEY)).toBe(false);
    auth.signOut();
    expect(auth.message).toBeUndefined();
  });
});

describe('ThemeStore', () => {
  it('follows the system until the user picks, and remembers the pick', () => {
    let listener: ((event: { matches: boolean }) => void) | undefined;
    const query = { matches: true, addEventListener: (_type: 'change', fn: (event: { matches: boolean }) => void) => void (listener = fn) };
    const storage = memoryStorage();
    const theme = new ThemeStore(storage, query);
    expect(theme.mode).toBe('system');
    expect(theme.resolved).toBe('dark');
    listener!({ matches: false });
    expect(theme.resolved).toBe('light');
    theme.toggle();
    expect(theme.resolved).toBe('dark');
    expect(storage.data.get(THEME_KEY)).toBe('dark');
    expect(new ThemeStore(storage, query).resolved).toBe('dark');
    theme.set('system');
    expect(theme.resolved).toBe('light');
  });

  it('ignores a stored value it does not know', () => {
    expect(new ThemeStore(memoryStorage({ [THEME_KEY]: 'purple' })).mode).toBe('system');
  });
});

describe('RouterStore', () => {
  it('maps paths to pages, with the overview for unknown ones', () => {
    expect(pageOf('/')).toBe('/');
    expect(pageOf('/models/')).toBe('/models');
    expect(pageOf('/playground')).toBe('/playground');
    expect(pageOf('/nope')).toBe('/');
  });

  it('pushes history entries and follows back/forward', () => {
    let onPop: (() => void) | undefined;
    const win = {
      location: { pathname: '/errors' },
      history: { pushState: vi.fn((_s: unknown, _t: string, path: string) => void (win.location.pathname = path)) },
      addEventListener: (_type: string, fn: () => void) => void (onPop = fn),
    };
    const router = new RouterStore(win as unknown as Window);
    expect(router.page).toBe('/errors');
    router.navigate('/models');
    expect(win.history.pushState).toHaveBeenCalledWith(null, '', '/models');
    router.navigate('/models');
    expect(win.history.pushState).toHaveBeenCalledTimes(1);
    win.location.pathname = '/connections';
    onPop!();
    expect(router.page).toBe('/connections');
  });
});

describe('admin API client', () => {
  function api(reply: (url: string, init: RequestInit) => Response | Promise<Response>, onUnauthorized = vi.fn()) {
    const calls: { url: string; init: RequestInit }[] = [];
    const client = createAdminApi({
      token: () => 'tok',
      onUnauthorized,
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
        calls.push({ url: String(input), init: init ?? {} });
        return reply(String(input), init ?? {});
      }) as typeof fetch,
    });
    return { client, calls, onUnauthorized };
  }
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

  it('sends the bearer token and unwraps the lists', async () => {
    const { client, calls } = api((url) => (url.endsWith('/models') ? json(200, { models: [{ name: 'a' }] }) : json(200, { connections: [{ id: 'c1' }] })));
    expect(await client.models()).toEqual([{ name: 'a' }]);
    expect(await client.connections()).toEqual([{ id: 'c1' }]);
    expect(calls[0]!.url).toBe('/api/models');
    expect((calls[0]!.init.headers as Record<string, string>).authorization).toBe('Bearer tok');
  });

  it('posts actions to the model and connection paths, encoding names', async () => {
    const { client, calls } = api(() => json(200, { model: 'a b', action: 'load', outcome: 'loaded', ms: 5 }));
    expect(await client.modelAction('a b', 'load')).toMatchObject({ outcome: 'loaded' });
    await client.closeConnection('c/1');
    expect(calls.map((call) => `${call.init.method} ${call.url}`)).toEqual(['POST /api/models/a%20b/load', 'POST /api/connections/c%2F1/close']);
  });

  it('turns 401 into an unauthorized error and tells the app', async () => {
    const { client, onUnauthorized } = api(() => json(401, { error: 'unauthorized' }));
    const error = await client.models().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminApiError);
    expect((error as AdminApiError).unauthorized).toBe(true);
    expect(onUnauthorized).toHaveBeenCalledOnce();
  });

  it('carries the server message of other errors, and a status 0 when unreachable', async () => {
    const failing = api(() => json(409, { message: 'model is loading' }));
    await expect(failing.client.modelAction('m', 'unload')).rejects.toThrow('model is loading (HTTP 409)');
    const failed = { model: 'm', action: 'load', outcome: 'failed', ms: 3, message: 'out of memory' };
    expect(await api(() => json(409, failed)).client.modelAction('m', 'load')).toEqual(failed); // an action that ran and failed
    const down = api(() => Promise.reject(new TypeError('fetch failed')));
    await expect(down.client.models()).rejects.toMatchObject({ status: 0 });
  });

  it('checkToken: accepted, refused (without signing out), or unverified when the endpoint is missing', async () => {
    const onUnauthorized = vi.fn();
    expect(await api(() => json(200, { connections: [] })).client.checkToken('x')).toBe('accepted');
    expect(await api(() => json(401, {}), onUnauthorized).client.checkToken('x')).toBe('refused');
    expect(onUnauthorized).not.toHaveBeenCalled();
    expect(await api(() => json(404, {})).client.checkToken('x')).toBe('unverified');
    const checked = api(() => json(200, {}));
    await checked.client.checkToken('other');
    expect((checked.calls[0]!.init.headers as Record<string, string>).authorization).toBe('Bearer other');
  });
});

describe('ModelsStore', () => {
  const demo: ModelInfo = { name: 'demo', state: 'loaded', default: true };

  it('offers the actions a state allows', () => {
    expect(actionsFor('loaded')).toEqual(['unload', 'reload']);
    expect(actionsFor('available')).toEqual(['load']);
    expect(actionsFor('failed')).toEqual(['load']);
    expect(actionsFor('loading')).toEqual([]);
    expect(actionsFor('unsupported')).toEqual([]);
  });

  it('shows progress while an action runs, then the outcome, then the fresh list', async () => {
    const action = deferred<Awaited<ReturnType<AdminApi['modelAction']>>>();
    const api = { models: vi.fn(async () => [{ ...demo, state: 'available' as const }]), modelAction: vi.fn(() => action.promise) };
    const models = new ModelsStore(api);
    const running = models.act('demo', 'unload');
    expect(models.pending.demo).toBe('unload');
    await models.act('demo', 'unload'); // a second click while running does nothing
    expect(api.modelAction).toHaveBeenCalledOnce();
    action.resolve({ model: 'demo', action: 'unload', outcome: 'unloaded', ms: 12.4 });
    await running;
    expect(models.pending.demo).toBeUndefined();
    expect(models.notes.demo).toEqual({ ok: true, text: 'unloaded in 12 ms' });
    expect(models.models[0]!.state).toBe('available');
  });

  it('shows a failed outcome and an HTTP error as errors', async () => {
    const api = {
      models: vi.fn(async () => [demo]),
      modelAction: vi
        .fn<AdminApi['modelAction']>()
        .mockResolvedValueOnce({ model: 'demo', action: 'load', outcome: 'failed', ms: 3, message: 'out of memory' })
        .mockRejectedValueOnce(new AdminApiError(500, 'boom (HTTP 500)')),
    };
    const models = new ModelsStore(api);
    await models.act('demo', 'load');
    expect(models.notes.demo).toEqual({ ok: false, text: 'load failed: out of memory' });
    await models.act('demo', 'reload');
    expect(models.notes.demo).toEqual({ ok: false, text: 'reload failed: boom (HTTP 500)' });
  });

  it('takes newer lists from the feed and keeps fields only the API sends', async () => {
    const api = { models: vi.fn(async () => [{ ...demo, lastUsedAt: 500 }]), modelAction: vi.fn() };
    const models = new ModelsStore(api);
    await models.refresh();
    models.applyFeed([{ ...demo, slotsBusy: 1 }], 2000);
    expect(models.models[0]).toMatchObject({ slotsBusy: 1, lastUsedAt: 500 });
    models.applyFeed([{ ...demo, slotsBusy: 2 }], 1500); // older than what is shown
    expect(models.models[0]!.slotsBusy).toBe(1);
    api.models.mockRejectedValueOnce(new Error('down'));
    await models.refresh();
    expect(models.error).toContain('down');
  });

  describe('orders API answers and feed snapshots on the server clock only', () => {
    const T = 1_700_000_000_000; // the server's clock
    function setup() {
      let latest: number | undefined; // ts of the newest snapshot the page received
      const api = { models: vi.fn<AdminApi['models']>(async () => [demo]), modelAction: vi.fn<AdminApi['modelAction']>() };
      const models = new ModelsStore(api, () => latest);
      /** The feed delivers a snapshot; the Models page, when shown, applies it. */
      const receive = (ts: number) => void (latest = ts);
      const snapshot = (ts: number, state: ModelInfo['state']) => {
        receive(ts);
        models.applyFeed([{ ...demo, state }], ts);
      };
      return { api, models, receive, snapshot, state: () => models.models[0]?.state };
    }

    it.each([
      ['10 minutes ahead', 600_000],
      ['10 minutes behind', -600_000],
    ])('with the browser clock %s', async (_label, skew) => {
      const clock = vi.spyOn(Date, 'now').mockReturnValue(T + skew);
      try {
        const { api, models, snapshot, state } = setup();
        snapshot(T, 'loaded');
        await models.refresh();
        snapshot(T + 1000, 'unloading'); // taken after the answer: newer
        expect(state()).toBe('unloading');
        api.modelAction.mockResolvedValueOnce({ model: 'demo', action: 'unload', outcome: 'unloaded', ms: 5 });
        api.models.mockResolvedValueOnce([{ ...demo, state: 'available' }]);
        await models.act('demo', 'unload'); // the list asked for after the action is newer than every snapshot received
        expect(state()).toBe('available');
        snapshot(T + 1000, 'unloading'); // the same snapshot again (the page mounted anew): not newer
        expect(state()).toBe('available');
        snapshot(T + 2000, 'available');
        expect(models.models[0]).toMatchObject({ state: 'available' });
      } finally {
        clock.mockRestore();
      }
    });

    it('keeps a snapshot taken while a request was in flight, and the later of two requests', async () => {
      const { api, models, snapshot, state } = setup();
      snapshot(T, 'loaded');
      const answer = deferred<ModelInfo[]>();
      api.models.mockReturnValueOnce(answer.promise);
      const refreshing = models.refresh();
      snapshot(T + 1000, 'unloading');
      answer.resolve([{ ...demo, state: 'loaded' }]);
      await refreshing;
      expect(state()).toBe('unloading');

      const first = deferred<ModelInfo[]>();
      const second = deferred<ModelInfo[]>();
      api.models.mockReturnValueOnce(first.promise).mockReturnValueOnce(second.promise);
      const a = models.refresh();
      const b = models.refresh();
      second.resolve([{ ...demo, state: 'available' }]);
      await b;
      first.resolve([{ ...demo, state: 'unloading' }]); // answered last, asked first
      await a;
      expect(state()).toBe('available');
    });

    it('prefers the answer to a snapshot received before it was asked for, shown after (a page mounting)', async () => {
      const { api, models, receive, snapshot, state } = setup();
      snapshot(T - 5000, 'loaded'); // shown on the page's last visit
      receive(T); // received while the page was away...
      const answer = deferred<ModelInfo[]>();
      api.models.mockReturnValueOnce(answer.promise);
      const refreshing = models.refresh();
      models.applyFeed([{ ...demo, state: 'loaded' }], T); // ...and applied when it mounts, after the poll started
      answer.resolve([{ ...demo, state: 'available' }]);
      await refreshing;
      expect(state()).toBe('available');
    });
  });
});

describe('ConnectionsStore', () => {
  it('lists oldest first and removes a connection once closed', async () => {
    const list = [
      { id: 'b', keyName: 'anonymous', remoteAddress: '2', openedAt: 20, inFlight: 0 },
      { id: 'a', keyName: 'anonymous', remoteAddress: '1', openedAt: 10, inFlight: 1 },
    ];
    const api = { connections: vi.fn(async () => list), closeConnection: vi.fn(async (id: string) => void list.splice(list.findIndex((c) => c.id === id), 1)) };
    const store = new ConnectionsStore(api);
    await store.refresh();
    expect(store.connections.map((c) => c.id)).toEqual(['a', 'b']);
    await store.disconnect('a');
    expect(api.closeConnection).toHaveBeenCalledWith('a');
    expect(store.connections.map((c) => c.id)).toEqual(['b']);
    expect(store.note).toEqual({ ok: true, text: 'Connection a closed.' });
  });

  it('reports a failed disconnect', async () => {
    const api = { connections: vi.fn(async () => []), closeConnection: vi.fn(async () => Promise.reject(new Error('gone'))) };
    const store = new ConnectionsStore(api);
    await store.disconnect('x');
    expect(store.note).toEqual({ ok: false, text: 'Could not close x: gone' });
    expect(store.closing.x).toBeUndefined();
  });
});

describe('PlaygroundStore', () => {
  /** A stream the test feeds by hand. */
  class FakeStream implements PlaygroundStream {
    readonly pieces: string[] = [];
    private wake: (() => void) | undefined;
    private done = false;
    private failure: Error | undefined;
    cancelled = false;
    readonly ended = deferred<EndFrame>();
    readonly end = this.ended.promise;
    push(text: string) {
      this.pieces.push(text);
      this.wake?.();
    }
    finish(frame: EndFrame) {
      this.done = true;
      this.ended.resolve(frame);
      this.wake?.();
    }
    fail(error: Error) {
      this.failure = error;
      this.done = true;
      this.end.catch(() => undefined);
      this.ended.reject(error);
      this.wake?.();
    }
    cancel() {
      this.cancelled = true;
    }
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (this.pieces.length) {
          yield this.pieces.shift()!;
          continue;
        }
        if (this.done) {
          if (this.failure) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    }
  }

  function setup() {
    const streams: FakeStream[] = [];
    const requests: GenerateRequest[] = [];
    const clients: PlaygroundClient[] = [];
    const connect = vi.fn(async () => {
      const client: PlaygroundClient = {
        hello: {
          models: [{ name: 'small', state: 'available', default: false }, { name: 'demo', state: 'loaded', default: true }],
          limits: { maxTokensCeiling: 4096, maxTokensDefault: 256 },
        },
        generate: (request) => {
          requests.push(request);
          const stream = new FakeStream();
          streams.push(stream);
          return stream;
        },
        close: vi.fn(),
      };
      clients.push(client);
      return client;
    });
    let clock = 0;
    const store = new PlaygroundStore({ connect, now: () => clock, schedule: (flush) => queueMicrotask(flush) });
    return { store, streams, requests, clients, connect, tick: (ms: number) => (clock += ms) };
  }
  const flush = () => new Promise((resolve) => setTimeout(resolve, 0));
  const end = (reason: EndFrame['reason'], completionTokens: number): EndFrame => ({
    t: 'end',
    id: 'r1',
    reason,
    usage: { promptTokens: 5, completionTokens },
    timings: { queueMs: 1, ttftMs: 20, totalMs: 220 },
  });

  it('picks the default model from hello', async () => {
    const { store } = setup();
    await store.prepare();
    expect(store.models.map((m) => m.name)).toEqual(['small', 'demo']);
    expect(store.model).toBe('demo');
    expect(store.maxTokensCeiling).toBe(4096);
  });

  it('streams text in, measures time to first token and speed, and ends with the reason', async () => {
    const { store, streams, requests, tick } = setup();
    await store.prepare();
    Object.assign(store, { prompt: 'hi', maxTokens: 50, temperature: 0, seed: 7 });
    const run = store.run();
    await flush();
    expect(store.running).toBe(true);
    expect(requests[0]).toEqual({ prompt: 'hi', model: 'demo', maxTokens: 50, temperature: 0, seed: 7 });
    tick(30);
    streams[0]!.push('Hel');
    await flush();
    expect(store.ttftMs).toBe(30);
    tick(100);
    streams[0]!.push('lo');
    await flush();
    expect(store.output).toBe('Hello');
    expect(store.pieces).toBe(2);
    expect(store.tokensPerSecond).toBe(10); // one more piece in 100 ms
    streams[0]!.finish(end('length', 3));
    await run;
    expect(store.running).toBe(false);
    expect(store.end?.reason).toBe('length');
    expect(store.ttftMs).toBe(20); // the server's figure once ended
    expect(store.tokensPerSecond).toBe(10); // 2 tokens after the first in 200 ms
  });

  it('cancel() asks the server to stop; the run ends with its cancelled frame', async () => {
    const { store, streams } = setup();
    const run = store.run();
    await flush();
    streams[0]!.push('a');
    store.cancel();
    expect(streams[0]!.cancelled).toBe(true);
    expect(store.cancelling).toBe(true);
    streams[0]!.finish(end('cancelled', 1));
    await run;
    expect(store.end?.reason).toBe('cancelled');
    expect(store.cancelling).toBe(false);
  });

  it('shows an error and connects again on the next run after a lost connection', async () => {
    const { store, streams, connect, clients } = setup();
    const run = store.run();
    await flush();
    streams[0]!.push('partial');
    streams[0]!.fail(new LlmError({ code: 'connection_lost', message: 'connection closed (1006)' }));
    await run;
    expect(store.error).toContain('connection closed');
    expect(store.output).toBe('partial');
    expect(clients[0]!.close).toHaveBeenCalled();
    const again = store.run();
    await flush();
    expect(connect).toHaveBeenCalledTimes(2);
    streams[1]!.finish(end('stop', 0));
    await again;
    expect(store.error).toBeUndefined();
    expect(store.tokensPerSecond).toBeUndefined();
  });

  it('keeps the connection after an error frame that concerns only the request', async () => {
    const { store, streams, connect } = setup();
    const run = store.run();
    await flush();
    streams[0]!.fail(new LlmError({ code: 'invalid_params', message: '"maxTokens" may be at most 4096' }));
    await run;
    expect(store.error).toBe('invalid_params: "maxTokens" may be at most 4096');
    void store.run();
    await flush();
    expect(connect).toHaveBeenCalledTimes(1);
    store.dispose();
  });

  it('keeps a connect failure typed and says what to do about its code', async () => {
    const { store, connect } = setup();
    const refused = new ConnectError({ code: 'unauthorized', status: 401, message: 'a valid API key is required' });
    connect.mockRejectedValueOnce(refused);
    await store.prepare();
    expect(store.connectFailure).toBe(refused);
    expect(store.connectionError).toBe('Cannot connect to the streaming endpoint: unauthorized (401): a valid API key is required. The server requires an API key: enter a valid one under "API key".');
    connect.mockRejectedValueOnce(new ConnectError({ code: 'too_many_connections', status: 429, message: 'at most 8 connections per address', retryAfterMs: 2500 }));
    await store.run();
    expect(store.connectFailure?.code).toBe('too_many_connections');
    expect(store.error).toMatch(/at most 8 connections per address\. Try again in 3 s$/);
    connect.mockRejectedValueOnce(new ConnectError({ code: 'unreachable', message: 'could not connect to ws://x/v1/stream: no answer' }));
    await store.run();
    expect(store.error).toMatch(/no answer\. If the server is up: enter an API key .* or check ALLOWED_ORIGINS$/);
    await store.prepare();
    expect(store.connectFailure).toBeUndefined();
    expect(store.connectionError).toBeUndefined();
    expect(connectFailureText(new Error('plain'))).toBe('plain');
  });

  it('leaves emptied number fields to the server and reconnects when the API key changes', async () => {
    const { store, requests, connect } = setup();
    await store.prepare();
    Object.assign(store, { maxTokens: null, temperature: null, seed: undefined, apiKey: 'k1' });
    void store.run();
    await flush();
    expect(requests[0]).toEqual({ prompt: store.prompt, model: 'demo' });
    expect(connect).toHaveBeenLastCalledWith('k1');
    store.dispose();
  });
});
