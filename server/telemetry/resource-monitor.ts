import os from 'node:os';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import si from 'systeminformation';
import type { ResourceFigures } from '../../protocol/index.js';
import type { LoadedModels } from './loaded-models.js';

/** Timer period of the event-loop delay histogram; every reading includes it, so it is subtracted. */
const LOOP_RESOLUTION_MS = 10;

interface CpuTimes {
  idle: number;
  total: number;
}

/**
 * Process and machine resources, sampled on demand (the feed calls it once a second). Only cheap
 * calls: `os.cpus()` deltas for system CPU, `process.cpuUsage()` deltas, `process.memoryUsage()`,
 * `si.mem()` (reads /proc/meminfo; nothing here spawns a process, unlike `si.currentLoad()`),
 * perf_hooks for the event loop and node-llama-cpp's own figures for the models.
 */
export class ResourceMonitor {
  private readonly loopDelay: IntervalHistogram;
  private previousCpu: CpuTimes = systemCpuTimes();
  private previousProcess = process.cpuUsage();
  private previousAt = performance.now();
  private latestFigures: ResourceFigures = emptyFigures();

  constructor(private readonly models: LoadedModels) {
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loopDelay.enable();
  }

  /** The figures of the latest sample (zeros before the first). */
  get latest(): ResourceFigures {
    return this.latestFigures;
  }

  /** Measures everything since the previous sample and resets the event-loop histogram. */
  async sample(): Promise<ResourceFigures> {
    const now = performance.now();
    const cpu = systemCpuTimes();
    const processCpu = process.cpuUsage();
    const elapsedMicros = Math.max(1, (now - this.previousAt) * 1000);
    const processMicros = processCpu.user - this.previousProcess.user + (processCpu.system - this.previousProcess.system);
    const totalDelta = cpu.total - this.previousCpu.total;
    const idleDelta = cpu.idle - this.previousCpu.idle;
    this.previousCpu = cpu;
    this.previousProcess = processCpu;
    this.previousAt = now;

    const loop = this.loopDelay;
    const delay = (nanoseconds: number): number => (loop.count > 0 ? round2(Math.max(0, nanoseconds / 1e6 - LOOP_RESOLUTION_MS)) : 0);
    const eventLoopDelayMs = { p50: delay(loop.percentile(50)), p99: delay(loop.percentile(99)), max: delay(loop.max) };
    loop.reset();

    const memory = process.memoryUsage();
    const system = await si.mem().catch(() => undefined);
    const memTotalBytes = system?.total ?? os.totalmem();
    this.latestFigures = {
      cpuLoad: totalDelta > 0 ? round3(Math.min(1, Math.max(0, 1 - idleDelta / totalDelta))) : 0,
      processCpu: round3(processMicros / elapsedMicros),
      memTotalBytes,
      // `active` leaves out buffers and page cache, which the kernel gives back on demand.
      memUsedBytes: system ? system.active : memTotalBytes - os.freemem(),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      eventLoopDelayMs,
      models: this.models.memory().map(({ name, modelBytes, contextBytes }) => ({ name, modelBytes, contextBytes })),
    };
    return this.latestFigures;
  }

  stop(): void {
    this.loopDelay.disable();
  }
}

function systemCpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}

function emptyFigures(): ResourceFigures {
  return {
    cpuLoad: 0,
    processCpu: 0,
    memTotalBytes: os.totalmem(),
    memUsedBytes: 0,
    rssBytes: 0,
    heapUsedBytes: 0,
    heapTotalBytes: 0,
    eventLoopDelayMs: { p50: 0, p99: 0, max: 0 },
    models: [],
  };
}

const round2 = (value: number): number => Math.round(value * 100) / 100;
const round3 = (value: number): number => Math.round(value * 1000) / 1000;
