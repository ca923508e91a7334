import { Counter, Gauge, type Registry } from 'prom-client';
import { METRIC_PREFIX } from './metrics.js';

/** What the resume window holds now, read at scrape time. */
export interface ResumeFigures {
  /** Estimated memory of the frames kept for resumes. */
  bytes: number;
  /** Requests whose connection dropped, waiting for a resume. */
  detached: number;
}

/** Why a waiting request was cancelled without a resume (a bounded label). */
export type ResumeDropLabel = 'expired' | 'evicted' | 'shutdown';

/** Metrics of resumable streams: resumes, requests cancelled while waiting for one, and the window's size. */
export class ResumeMetrics {
  private readonly resumes: Counter<'result'>;
  private readonly drops: Counter<'why'>;

  constructor(registry: Registry, figures: () => ResumeFigures) {
    const registers = [registry];
    this.resumes = new Counter({
      name: `${METRIC_PREFIX}stream_resumes_total`,
      help: 'resume frames by result: resumed (replayed and attached), refused (an err was sent)',
      labelNames: ['result'],
      registers,
    });
    this.drops = new Counter({
      name: `${METRIC_PREFIX}detached_requests_cancelled_total`,
      help: 'Requests of dropped connections cancelled without a resume: expired (RESUME_WINDOW_MS passed), evicted (the memory bound), shutdown',
      labelNames: ['why'],
      registers,
    });
    new Gauge({
      name: `${METRIC_PREFIX}resume_window_bytes`,
      help: 'Estimated memory of the frames kept for resumes',
      registers,
      collect() {
        this.set(figures().bytes);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}requests_detached`,
      help: 'Requests whose connection dropped, paused while they wait for a resume',
      registers,
      collect() {
        this.set(figures().detached);
      },
    });
  }

  resumed(): void {
    this.resumes.labels('resumed').inc();
  }

  refused(): void {
    this.resumes.labels('refused').inc();
  }

  dropped(why: ResumeDropLabel): void {
    this.drops.labels(why).inc();
  }
}
