import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../protocol/index.js';
import { parseExposition, sampleValue } from '../helpers/exposition.js';
import { HotCounter, HotHistogram } from '../../server/telemetry/hot-metrics.js';
import { Observability } from '../../server/telemetry/observability.js';
import { createLogger } from '../../server/telemetry/logger.js';
import type { Origin } from '../../server/telemetry/events.js';

const origin: Origin = { session: 's-1', remoteAddress: '127.0.0.1', keyName: 'anonymous' };
const models: ModelInfo[] = [{ name: 'demo', state: 'loaded', default: true, sizeBytes: 1000, slotsBusy: 1, slotsTotal: 2, queueLength: 3 }];
const usage = (promptTokens: number, completionTokens: number) => ({ promptTokens, completionTokens });
const timings = (queueMs: number, ttftMs: number, totalMs: number) => ({ queueMs, ttftMs, totalMs });

/** Open connections as the session registry would report them. */
let openConnections = 0;

function observability(): Observability {
  return new Observability({ metrics: true, feedHistoryS: 300, models: () => models, connections: () => openConnections, logger: createLogger('silent') });
}

async function scrape(obs: Observability) {
  return parseExposition(await obs.metrics!.prometheus.text());
}

describe('service metrics', () => {
  it('move by the right amounts after a known sequence', async () => {
    const obs = observability();
    const telemetry = obs.telemetry;
    telemetry.connectionOpened(origin);
    telemetry.frameIn(100);
    telemetry.frameOut(40);
    telemetry.frameOut(60);

    const done = telemetry.request('demo', 'a', origin);
    done.started(5);
    for (let i = 0; i < 10; i++) done.token();
    done.ended('length', usage(7, 10), timings(5, 12, 50));

    const cancelled = telemetry.request('demo', 'b', origin);
    cancelled.started(0);
    for (let i = 0; i < 3; i++) cancelled.token();
    cancelled.ended('cancelled', usage(7, 3), timings(0, 4, 20));
    cancelled.ended('cancelled', usage(7, 3), timings(0, 4, 20)); // a second call is ignored

    telemetry.requestRefused('invalid_params', origin);
    telemetry.requestRefused('model_not_found', origin, 'no-such-model-123');
    telemetry.requestRefused('rate_limited', origin, 'demo');
    telemetry.rateLimited(origin);
    telemetry.backpressurePaused();
    telemetry.error('internal', 'boom', 'demo');
    telemetry.error('Weird Code!', 'x');
    telemetry.connectionClosed(origin, 'idle', 1000);

    const families = await scrape(obs);
    const value = (name: string, labels: Record<string, string> = {}) => sampleValue(families, name, labels);
    expect(value('llm_requests_total', { model: 'demo', outcome: 'length' })).toBe(1);
    expect(value('llm_requests_total', { model: 'demo', outcome: 'cancelled' })).toBe(1);
    expect(value('llm_requests_total', { model: '', outcome: 'invalid_params' })).toBe(1);
    // A name the client made up never becomes a label value.
    expect(value('llm_requests_total', { model: '_unknown', outcome: 'model_not_found' })).toBe(1);
    expect([...families.get('llm_requests_total')!.samples].some((sample) => sample.labels.model === 'no-such-model-123')).toBe(false);
    expect(value('llm_requests_total', { model: 'demo', outcome: 'rate_limited' })).toBe(1);
    expect(value('llm_rate_limited_total')).toBe(1);
    expect(value('llm_backpressure_pauses_total')).toBe(1);
    expect(value('llm_prompt_tokens_total', { model: 'demo' })).toBe(14);
    expect(value('llm_generation_tokens_total', { model: 'demo' })).toBe(13);
    expect(value('llm_time_to_first_token_seconds_count', { model: 'demo' })).toBe(2);
    expect(value('llm_inter_token_latency_seconds_count', { model: 'demo' })).toBe(9 + 2);
    expect(value('llm_request_queue_seconds_count', { model: 'demo' })).toBe(2);
    expect(value('llm_request_queue_seconds_sum', { model: 'demo' })).toBeCloseTo(0.005, 6);
    expect(value('llm_request_duration_seconds_count', { model: 'demo' })).toBe(2);
    expect(value('llm_request_duration_seconds_sum', { model: 'demo' })).toBeCloseTo(0.07, 6);
    expect(value('llm_request_generation_tokens_sum', { model: 'demo' })).toBe(13);
    expect(value('llm_connections_opened_total')).toBe(1);
    expect(value('llm_connections_closed_total', { cause: 'idle' })).toBe(1);
    expect(value('llm_connections_open')).toBe(0);
    openConnections = 3;
    expect(sampleValue(await scrape(obs), 'llm_connections_open', {})).toBe(3);
    openConnections = 0;
    expect(value('llm_ws_frames_received_total')).toBe(1);
    expect(value('llm_ws_received_bytes_total')).toBe(100);
    expect(value('llm_ws_frames_sent_total')).toBe(2);
    expect(value('llm_ws_sent_bytes_total')).toBe(100);
    expect(value('llm_errors_total', { code: 'internal' })).toBe(1);
    expect(value('llm_errors_total', { code: 'other' })).toBe(1);
    // Read from the pool at scrape time.
    expect(value('llm_requests_running', { model: 'demo' })).toBe(1);
    expect(value('llm_requests_waiting', { model: 'demo' })).toBe(3);
    expect(value('llm_slots_total', { model: 'demo' })).toBe(2);
    expect(value('llm_model_loaded', { model: 'demo' })).toBe(1);
    // prom-client's process defaults and event-loop lag are there too.
    expect(value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(families.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);
    // Every service metric is under the prefix and follows the naming conventions.
    for (const family of families.values()) {
      if (family.name.startsWith('process_') || family.name.startsWith('nodejs_')) continue;
      expect(family.name).toMatch(/^llm_/);
      if (family.type === 'counter') expect(family.name).toMatch(/_total$/);
      expect(family.help.length).toBeGreaterThan(5);
    }
    obs.stop();
  });

  it('feeds the live windows: tokens per second, percentiles, totals and recent errors', async () => {
    const obs = observability();
    const request = obs.telemetry.request('demo', 'a', origin);
    request.started(0);
    for (let i = 0; i < 50; i++) request.token();
    request.ended('stop', usage(3, 50), timings(0, 1, 5));
    obs.telemetry.requestRefused('overloaded', origin, 'demo');
    obs.telemetry.error('overloaded', 'all slots are busy', 'demo');
    await obs.tick();
    const snapshot = obs.metrics!.feed.latest!;
    expect(snapshot.tokensPerSecond.s1).toBeGreaterThan(0);
    expect(snapshot.interTokenMs.p50).not.toBeNull();
    expect(snapshot.ttftMs.p99).not.toBeNull();
    expect(snapshot.requests).toEqual({ running: 1, waiting: 3, completedTotal: 1, failedTotal: 1 });
    expect(snapshot.slots).toEqual({ busy: 1, total: 2 });
    expect(snapshot.errors).toEqual([expect.objectContaining({ code: 'overloaded', message: 'all slots are busy', model: 'demo' })]);
    expect(snapshot.resources.memTotalBytes).toBeGreaterThan(0);
    expect(snapshot.resources.rssBytes).toBeGreaterThan(0);
    obs.stop();
  });

  it('with METRICS_ENABLED off and no access log, the gateway gets the no-op telemetry', () => {
    const obs = new Observability({ metrics: false, feedHistoryS: 300, models: () => models, connections: () => 0, logger: createLogger('silent') });
    expect(obs.metrics).toBeUndefined();
    expect(() => obs.telemetry.request('demo', 'a', origin).token()).not.toThrow();
  });
});

describe('hot metrics', () => {
  it('a HotHistogram exposes exactly what prom-client’s Histogram does for the same values', async () => {
    const buckets = [0.001, 0.01, 0.1, 1];
    const values = [0, 0.0005, 0.001, 0.002, 0.05, 0.1, 0.5, 3, 10, 0.01];
    const ours = new Registry();
    const theirs = new Registry();
    const hot = new HotHistogram({ name: 'x_seconds', help: 'h', labelNames: ['model'], buckets, registers: [ours] });
    const reference = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['model'], buckets, registers: [theirs] });
    const cell = hot.child('m');
    for (const value of values) {
      cell.observe(value);
      reference.labels('m').observe(value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('a HotCounter cell counts and is parsed back', async () => {
    const registry = new Registry();
    const counter = new HotCounter({ name: 'y_total', help: 'h', labelNames: ['model'], registers: [registry] });
    const cell = counter.child('a"b\\c');
    cell.value += 5;
    expect(counter.child('a"b\\c')).toBe(cell);
    const families = parseExposition(await registry.metrics());
    expect(sampleValue(families, 'y_total', { model: 'a"b\\c' })).toBe(5);
  });
});

describe('exposition parser', () => {
  it.each([
    ['a sample without TYPE', 'foo 1\n'],
    ['a bad value', '# TYPE foo gauge\nfoo abc\n'],
    ['an unterminated label', '# TYPE foo gauge\nfoo{a="1} 2\n'],
    ['a duplicate series', '# TYPE foo gauge\nfoo{a="1"} 2\nfoo{a="1"} 3\n'],
    ['buckets that are not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 4\nh_count 4\nh_sum 1\n'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 5\nh_count 5\nh_sum 1\n'],
  ])('rejects %s', (_name, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});
