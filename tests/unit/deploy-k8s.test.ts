import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/config.js';
import { buildKustomization, containersOf, kubectlKustomize, readKustomization, readManifests, yamlFilesUnder, type Manifest } from '../helpers/kustomize.js';

/*
 * The Kubernetes manifests (docker/k8s): every object valid against the Kubernetes schema, no
 * field name Kubernetes does not know, the overlay built as kustomize builds it, and the parts
 * that must agree with the service agreeing: probes, drain timing, sizing, selectors, the metric
 * the autoscaler reads.
 */

const K8S = path.resolve(import.meta.dirname, '../../docker/k8s');
const BASE = path.join(K8S, 'base');
const PRODUCTION = path.join(K8S, 'overlays/production');

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/Namespace': Namespace,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
};

/** Every property name of the Kubernetes API (from the models' declarations): a typo is not among them. */
const KNOWN_FIELDS = (() => {
  const modules = path.resolve(import.meta.dirname, '../../node_modules');
  const names = new Set<string>();
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.name.endsWith('.d.ts')) for (const match of readFileSync(full, 'utf8').matchAll(/^\s+"([A-Za-z0-9_$-]+)"\??:/gm)) names.add(match[1]!);
    }
  };
  // Object metadata and selectors are declared in the API machinery package.
  for (const root of ['kubernetes-models', '@kubernetes-models/apimachinery']) visit(path.join(modules, root));
  return names;
})();
/** Maps whose keys are the user's own: label and annotation names, settings, selectors. */
const FREE_MAPS = new Set(['labels', 'annotations', 'data', 'matchLabels', 'selector', 'nodeSelector', 'requests', 'limits']);

function unknownFields(value: unknown, at = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((item, index) => unknownFields(item, `${at}[${index}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, child]) => [
    ...(KNOWN_FIELDS.has(key) ? [] : [`${at}.${key}`]),
    ...(FREE_MAPS.has(key) ? [] : unknownFields(child, `${at}.${key}`)),
  ]);
}

function validate(object: Manifest): void {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!Model) throw new Error(`no schema for ${object.apiVersion} ${object.kind}: add it to MODELS`);
  new Model(object as never).validate();
  expect(unknownFields(object), `${object.kind}/${object.metadata.name}`).toEqual([]);
}

const byKind = (objects: Manifest[], kind: string, name?: string): Manifest => {
  const found = objects.find((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? `/${name}` : ''}`);
  return found;
};

type Container = ReturnType<typeof containersOf>[number] & {
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string }; periodSeconds: number; failureThreshold: number };
  lifecycle: { preStop: { exec: { command: string[] } } };
  resources: { requests: { memory: string; cpu: string }; limits: { memory: string } };
  volumeMounts: { name: string; mountPath: string }[];
  ports: { name: string; containerPort: number }[];
};

function bytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (!match) throw new Error(`unexpected quantity ${quantity}`);
  return Number(match[1]) * 1024 ** ['', 'Ki', 'Mi', 'Gi', 'Ti'].indexOf(match[2] ?? '');
}

/** What must hold in any build: the checks an operator would otherwise learn from an outage. */
function checkDeployment(objects: Manifest[]): void {
  const deployment = byKind(objects, 'Deployment', 'llm-stream');
  const config = loadConfig((byKind(objects, 'ConfigMap', 'llm-stream-config') as unknown as { data: Record<string, string> }).data);
  const pod = (deployment.spec as { template: { metadata: { labels: Record<string, string> }; spec: { terminationGracePeriodSeconds: number; volumes: { name: string }[] } } }).template;
  const container = containersOf(deployment)[0] as Container;

  expect(container.readinessProbe.httpGet.path).toBe('/readyz');
  expect(container.livenessProbe.httpGet.path).toBe('/healthz');
  expect(container.ports.find((port) => port.name === container.readinessProbe.httpGet.port)?.containerPort).toBe(config.port);
  // The drain fits in the grace period: preStop pause, SHUTDOWN_GRACE_MS, 2 s to end the rest.
  const preStopS = Number(container.lifecycle.preStop.exec.command.at(-1));
  expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopS * 1000 + config.shutdownGraceMs + 2000);
  // /healthz answers 503 while draining: liveness must not give up before the drain is over.
  expect(container.livenessProbe.periodSeconds * container.livenessProbe.failureThreshold).toBeGreaterThan(pod.spec.terminationGracePeriodSeconds);
  // The memory budget fits in the container with room for Node.js.
  expect(bytes(container.resources.limits.memory)).toBeGreaterThanOrEqual(config.memoryBudgetBytes + 256 * 1024 ** 2);
  expect(container.resources.requests.memory).toBe(container.resources.limits.memory);
  expect(Number(container.resources.requests.cpu)).toBeGreaterThanOrEqual(config.threads + 1);
  expect(container.volumeMounts.find((mount) => mount.name === 'models')?.mountPath).toBe(config.modelsDir);
  expect(pod.spec.volumes.map((volume) => volume.name)).toEqual(expect.arrayContaining(container.volumeMounts.map((mount) => mount.name)));

  // Per-key limits shared in Redis, served by the Service the manifests define.
  const redisHost = new URL(config.redisUrl).hostname;
  const redisService = byKind(objects, 'Service', redisHost);
  const redisPods = byKind(objects, 'Deployment', 'llm-stream-redis');
  expect((redisService.spec as { selector: Record<string, string> }).selector).toEqual((redisPods.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels);

  for (const selecting of [byKind(objects, 'Service', 'llm-stream'), byKind(objects, 'PodDisruptionBudget')]) {
    const spec = selecting.spec as { selector: Record<string, string> | { matchLabels: Record<string, string> } };
    const labels = 'matchLabels' in spec.selector ? spec.selector.matchLabels : spec.selector;
    expect(pod.metadata.labels, `${selecting.kind} selects the pods`).toMatchObject(labels as Record<string, string>);
  }
  const hpa = byKind(objects, 'HorizontalPodAutoscaler').spec as { scaleTargetRef: { kind: string; name: string }; minReplicas: number; metrics: { pods: { metric: { name: string } } }[] };
  expect(hpa.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'llm-stream' });
  expect(hpa.metrics.map((metric) => metric.pods.metric.name)).toEqual(['llm_requests_waiting']);
  const pdb = byKind(objects, 'PodDisruptionBudget').spec as { maxUnavailable: number };
  expect(hpa.minReplicas).toBeGreaterThan(pdb.maxUnavailable);
}

describe('Kubernetes manifests', () => {
  it('are each valid Kubernetes objects with no unknown field', () => {
    // Whole objects: the resources of each kustomization (patches are partial by design).
    const kustomizations = yamlFilesUnder(K8S).filter((file) => file.endsWith('kustomization.yaml')).map(path.dirname);
    const files = kustomizations.flatMap((dir) => (readKustomization(dir).resources ?? []).map((resource) => path.join(dir, resource)).filter((file) => /\.ya?ml$/.test(file)));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) for (const object of readManifests(file)) validate(object);
    // Every file is used: a resource or a patch of some kustomization.
    const patches = kustomizations.flatMap((dir) => (readKustomization(dir).patches ?? []).map((patch) => path.join(dir, patch.path)));
    const used = new Set([...files, ...patches, ...kustomizations.map((dir) => path.join(dir, 'kustomization.yaml'))]);
    expect(yamlFilesUnder(K8S).filter((file) => !used.has(file))).toEqual([]);
  });

  it('base: probes, drain timing, sizing, selectors and autoscaling agree with the service', () => {
    const objects = buildKustomization(BASE);
    for (const object of objects) validate(object);
    checkDeployment(objects);
  });

  it('production overlay: builds on the base and still agrees', () => {
    const objects = buildKustomization(PRODUCTION);
    for (const object of objects) validate(object);
    checkDeployment(objects);
    const deployment = byKind(objects, 'Deployment', 'llm-stream');
    expect(containersOf(deployment)[0]!.image).toBe('registry.example.com/llm-stream:0.1.0');
    expect((deployment.spec as { replicas: number }).replicas).toBe(4);
    expect(objects.filter((object) => object.kind !== 'Namespace').every((object) => object.metadata.namespace === 'llm-stream')).toBe(true);
  });

  it('builds as kubectl kustomize builds it (where kubectl is installed)', (context) => {
    const real = kubectlKustomize(PRODUCTION);
    if (!real) return context.skip('kubectl is not installed');
    const key = (object: Manifest): string => `${object.kind}/${object.metadata.name}`;
    const sorted = (objects: Manifest[]): Manifest[] => [...objects].sort((a, b) => key(a).localeCompare(key(b)));
    expect(sorted(buildKustomization(PRODUCTION))).toEqual(sorted(real));
  });
});
