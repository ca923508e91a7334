import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { findBinary } from './system-binary.js';

/** A Kubernetes object as written in a manifest. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [field: string]: unknown };
  [field: string]: unknown;
}

interface Kustomization {
  resources?: string[];
  namespace?: string;
  labels?: { pairs: Record<string, string> }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  replicas?: { name: string; count: number }[];
  patches?: { path: string }[];
}

/** Every object of a YAML file (several documents allowed). */
export function readManifests(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((error) => error.message).join('; ')}`);
    return document.toJS() as Manifest;
  }).filter(Boolean);
}

export function readKustomization(dir: string): Kustomization {
  return readManifests(path.join(dir, 'kustomization.yaml'))[0] as unknown as Kustomization;
}

/**
 * What `kustomize build dir` makes of the features the project's manifests use: resources (files
 * and folders), namespace, labels (metadata only), images, replicas and strategic-merge patches
 * (maps merged, lists of named items merged by name, other lists replaced). Where kubectl is
 * installed, `kubectlKustomize` gives the real build to compare with.
 */
export function buildKustomization(dir: string): Manifest[] {
  const kustomization = readKustomization(dir);
  let objects: Manifest[] = [];
  for (const resource of kustomization.resources ?? []) {
    const target = path.join(dir, resource);
    objects.push(...(statSync(target).isDirectory() ? buildKustomization(target) : readManifests(target)));
  }
  for (const patch of kustomization.patches ?? []) {
    for (const change of readManifests(path.join(dir, patch.path))) {
      const target = objects.find((object) => object.kind === change.kind && object.metadata.name === change.metadata.name);
      if (!target) throw new Error(`${dir}: patch ${patch.path} names ${change.kind}/${change.metadata.name}, which no resource defines`);
      objects = objects.map((object) => (object === target ? (strategicMerge(object, change) as Manifest) : object));
    }
  }
  for (const object of objects) {
    for (const { pairs } of kustomization.labels ?? []) object.metadata.labels = { ...object.metadata.labels, ...pairs };
    if (kustomization.namespace && object.kind !== 'Namespace') object.metadata.namespace = kustomization.namespace;
    for (const { name, count } of kustomization.replicas ?? []) {
      if (object.metadata.name === name && ['Deployment', 'StatefulSet', 'ReplicaSet'].includes(object.kind)) (object.spec as { replicas?: number }).replicas = count;
    }
    for (const container of containersOf(object)) {
      for (const image of kustomization.images ?? []) {
        const [imageName, tag] = splitImage(container.image);
        if (imageName !== image.name) continue;
        container.image = `${image.newName ?? imageName}${image.newTag ?? tag ? `:${image.newTag ?? tag}` : ''}`;
      }
    }
  }
  return objects;
}

/** `kubectl kustomize dir`, parsed; undefined where kubectl is not installed. */
export function kubectlKustomize(dir: string): Manifest[] | undefined {
  const kubectl = findBinary('kubectl');
  if (!kubectl) return undefined;
  const output = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
  return parseAllDocuments(output).map((document) => document.toJS() as Manifest);
}

export function containersOf(object: Manifest): { name: string; image: string; [field: string]: unknown }[] {
  const spec = (object.spec as { template?: { spec?: { containers?: { name: string; image: string }[] } } } | undefined)?.template?.spec;
  return spec?.containers ?? [];
}

/** Every YAML file under a folder. */
export function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return yamlFilesUnder(full);
    return /\.ya?ml$/.test(name) ? [full] : [];
  });
}

function splitImage(image: string): [string, string | undefined] {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, undefined];
}

function strategicMerge(base: unknown, patch: unknown): unknown {
  if (Array.isArray(base) && Array.isArray(patch)) {
    const named = (list: unknown[]): boolean => list.every((item) => typeof item === 'object' && item !== null && 'name' in item);
    if (!named(base) || !named(patch)) return patch;
    const merged = [...base] as { name: string }[];
    for (const item of patch as { name: string }[]) {
      const index = merged.findIndex((existing) => existing.name === item.name);
      if (index < 0) merged.push(item);
      else merged[index] = strategicMerge(merged[index], item) as { name: string };
    }
    return merged;
  }
  if (isMap(base) && isMap(patch)) {
    const merged: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(patch)) merged[key] = key in base ? strategicMerge(base[key], value) : value;
    return merged;
  }
  return patch;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
