import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Service } from '../../server/app.js';
import { registerSharedLimitsMetrics } from '../../server/shared-limits/shared-limits-metrics.js';
import { SharedLimits } from '../../server/shared-limits/shared-limits.js';
import { parseExposition, type MetricFamily } from '../helpers/exposition.js';
import { startTestService, tempDir } from '../helpers/service.js';
import { missingBinaries, requireBinary } from '../helpers/system-binary.js';

/*
 * The alert rules and the Grafana dashboard (docker/monitoring): valid for Prometheus's own
 * checker (promtool, Debian's prometheus package), each alert proven to fire by a promtool unit
 * test, and every metric they read one the service really exposes.
 */

const MONITORING = path.resolve(import.meta.dirname, '../../docker/monitoring');
const skipReason = missingBinaries(['promtool']);
if (skipReason) console.warn(`monitoring checks skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

interface AlertRule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Panel {
  id: number;
  title: string;
  type: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets: { refId: string; expr: string }[];
}

const rules = (): AlertRule[] => (parse(readFileSync(path.join(MONITORING, 'alerts.yml'), 'utf8')) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((group) => group.rules);
const dashboard = (): { uid: string; title: string; panels: Panel[]; templating: { list: { name: string }[] } } => JSON.parse(readFileSync(path.join(MONITORING, 'grafana-dashboard.json'), 'utf8'));

function promtool(...args: string[]): string {
  try {
    return execFileSync(requireBinary('promtool'), args, { cwd: MONITORING, encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${failed.stdout ?? ''}${failed.stderr ?? ''}`);
  }
}

/** Metric names a PromQL expression reads (identifiers followed by a selector, a range or nothing, less functions and keywords). */
function metricsIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""').replace(/\{[^}]*\}/g, '{}');
  const words = [...withoutStrings.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)].map((match) => match[1]!);
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'le', 'model', 'instance', 'outcome', 'code', 'limit', 'site', 'job', 'm', 's', 'h', 'd']);
  return [...new Set(words.filter((word) => !keywords.has(word) && /^(llm_|up$|process_|nodejs_)/.test(word)))];
}

suite('monitoring: alert rules and dashboard', () => {
  let service: Service;
  /** Every metric family the service exposes, with histogram and counter series names. */
  const exposed = new Set<string>(['up']);

  beforeAll(async () => {
    service = await startTestService();
    const text = await (await fetch(`${service.httpUrl}/metrics`, { headers: { authorization: 'Bearer test-admin-token' } })).text();
    // The shared-limit metrics exist where REDIS_URL is set; their names come from the same code.
    const registry = new Registry();
    const shared = new SharedLimits({ url: 'redis://127.0.0.1:1', logger: pino({ level: 'silent' }) });
    registerSharedLimitsMetrics(registry, shared);
    const sharedText = await registry.metrics();
    await shared.close();
    // A family without samples yet (a labelled counter nobody incremented) is still exposed.
    const seriesNames: Record<MetricFamily['type'], string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'], counter: [''], gauge: [''], untyped: [''] };
    for (const family of [...parseExposition(text).values(), ...parseExposition(sharedText).values()]) {
      for (const suffix of seriesNames[family.type]) exposed.add(family.name + suffix);
    }
  });

  afterAll(async () => {
    await service?.shutdown(0);
  });

  it('alert rules pass promtool check rules, and the Prometheus config that loads them is valid', () => {
    expect(promtool('check', 'rules', 'alerts.yml')).toContain(`SUCCESS: ${rules().length} rules found`);
    expect(promtool('check', 'config', '--syntax-only', 'prometheus.yml')).toContain('SUCCESS');
  });

  it('every alert fires on the series it is meant for (promtool test rules), and each is tested', () => {
    expect(promtool('test', 'rules', 'alerts.test.yml')).toContain('SUCCESS');
    const tested = new Set([...readFileSync(path.join(MONITORING, 'alerts.test.yml'), 'utf8').matchAll(/alertname:\s*(\w+)/g)].map((match) => match[1]));
    expect(rules().map((rule) => rule.alert).filter((alert) => !tested.has(alert))).toEqual([]);
  });

  it('covers what operators must hear of: queue, first-token latency, errors, saturation, memory, a replica down, the Redis fallback', () => {
    const byName = new Map(rules().map((rule) => [rule.alert, rule]));
    const reads = (alert: string, metric: string): void => expect(byName.get(alert)?.expr, alert).toContain(metric);
    reads('LlmQueueBuildingUp', 'llm_requests_waiting');
    reads('LlmTimeToFirstTokenHigh', 'llm_time_to_first_token_seconds_bucket');
    reads('LlmErrorRateHigh', 'llm_requests_total');
    reads('LlmSlotsSaturated', 'llm_slots_busy');
    reads('LlmMemoryNearBudget', 'llm_memory_budget_bytes');
    reads('LlmReplicaDown', 'up');
    reads('LlmSharedLimitsFallback', 'llm_shared_limits_up');
    for (const rule of rules()) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
  });

  it('alerts and dashboard read only metrics the service exposes', () => {
    const used = [...rules().map((rule) => rule.expr), ...dashboard().panels.flatMap((panel) => panel.targets.map((target) => target.expr))].flatMap(metricsIn);
    expect(used.length).toBeGreaterThan(10);
    expect([...new Set(used)].filter((metric) => !exposed.has(metric))).toEqual([]);
  });

  it('the Grafana dashboard is well formed and every panel query is valid PromQL', () => {
    const board = dashboard();
    expect(board.uid).toBe('llm-stream');
    expect(board.templating.list.map((variable) => variable.name)).toEqual(['datasource', 'instance']);
    const ids = board.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of board.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
    // promtool parses each query as a recording rule, with Grafana's variables filled in.
    const queries = board.panels.flatMap((panel) => panel.targets.map((target) => ({ panel: panel.title, expr: target.expr })));
    const file = path.join(tempDir('llm-grafana-promql'), 'panels.yml');
    const recordings = queries.map((query, index) => ({
      record: `grafana_panel_${index}`,
      expr: query.expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*'),
    }));
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'grafana', rules: recordings }] }));
    expect(promtool('check', 'rules', file)).toContain(`SUCCESS: ${queries.length} rules found`);
  });
});
