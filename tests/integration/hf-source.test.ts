import { createServer, type Server } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { MODEL_FILES, ensureModelFiles, placeModels } from '../helpers/model-files.js';
import { waitFor } from '../helpers/wait.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startTestService, tempDir } from '../helpers/service.js';

/** A local stand-in for the HuggingFace hub: serves one GGUF file under any `.../resolve/...` path. */
let hub: Server;
let hubUrl = '';
const requested: string[] = [];
let service: Service | undefined;
const savedEndpoint = process.env.MODEL_ENDPOINT;

beforeAll(async () => {
  await ensureModelFiles();
  const model = await readFile(MODEL_FILES.demoOtherSeed);
  hub = createServer((request, response) => {
    requested.push(`${request.method} ${request.url}`);
    if (!new URL(request.url ?? '/', 'http://hub').pathname.endsWith('/resolve/main/demo-mirror.gguf')) {
      response.writeHead(404).end('not found');
      return;
    }
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': model.length });
    response.end(request.method === 'HEAD' ? undefined : model);
  });
  await new Promise<void>((resolve) => hub.listen(0, '127.0.0.1', resolve));
  const address = hub.address();
  hubUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
  process.env.MODEL_ENDPOINT = hubUrl;
});

afterEach(async () => {
  await service?.shutdown(0);
  service = undefined;
});

afterAll(async () => {
  if (savedEndpoint === undefined) delete process.env.MODEL_ENDPOINT;
  else process.env.MODEL_ENDPOINT = savedEndpoint;
  await new Promise((resolve) => hub?.close(resolve));
});

async function startWith(manifest: object): Promise<{ dir: string; info: () => ModelInfo | undefined }> {
  const dir = tempDir('hf');
  await placeModels(dir, { demo: MODEL_FILES.demo });
  await writeFile(path.join(dir, 'models.json'), JSON.stringify(manifest));
  service = await startTestService({ modelsDir: dir, defaultModel: 'demo' });
  const running = service;
  return { dir, info: () => running.pool.list().find((model) => model.name === 'mirror') };
}

describe('HuggingFace sources', () => {
  it('downloads a manifest entry named by hf: into the models folder and serves it', async () => {
    const { info } = await startWith({ models: [{ name: 'mirror', source: 'hf:someone/some-repo/demo-mirror.gguf' }] });
    await waitFor(() => info()?.state === 'available', 20_000, 'the download').catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(info())}; hub saw ${JSON.stringify(requested)}`);
    });
    const socket = await RawSocket.open(service!.streamUrl);
    socket.send({ t: 'gen', id: 'm', model: 'mirror', prompt: 'Alice was', maxTokens: 5 });
    const last = (await socket.request('m', 20_000)).at(-1);
    expect(last, JSON.stringify(last)).toMatchObject({ t: 'end', reason: 'length' });
    socket.close();
  });

  it('lists a source that cannot be fetched as failed with a clear reason, and stays healthy', async () => {
    const { info } = await startWith({ models: [{ name: 'mirror', source: 'hf:someone/some-repo/missing.gguf' }] });
    await waitFor(() => info()?.state === 'failed', 20_000, 'the failure');
    expect(info()!.reason).toMatch(/download failed/);
    expect((await fetch(`${service!.httpUrl}/readyz`)).status).toBe(200);
  });
});
