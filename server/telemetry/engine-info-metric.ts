import { Gauge, type Registry } from 'prom-client';
import type { EngineInfo } from '../../protocol/index.js';
import { METRIC_PREFIX } from './metrics.js';

/**
 * Registers `llm_engine_info{build,backend,cpu_variant,llama_cpp_release} 1`: which engine the
 * process loaded, as an info metric (its value is always 1; the labels carry the facts).
 */
export function registerEngineInfo(registry: Registry, info: EngineInfo): Gauge<'build' | 'backend' | 'cpu_variant' | 'llama_cpp_release'> {
  const gauge = new Gauge({
    name: `${METRIC_PREFIX}engine_info`,
    help: 'The node-llama-cpp engine loaded: build (native or prebuilt), backend, CPU library variant and llama.cpp release; always 1',
    labelNames: ['build', 'backend', 'cpu_variant', 'llama_cpp_release'] as const,
    registers: [registry],
  });
  gauge.labels({ build: info.build, backend: info.backend, cpu_variant: info.cpuVariant, llama_cpp_release: info.llamaCppRelease }).set(1);
  return gauge;
}
