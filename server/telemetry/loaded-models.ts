import type { LoadedModelView } from './events.js';

/** Memory node-llama-cpp reports for one model name (summed when a replacement runs beside the old one). */
export interface ModelMemory {
  name: string;
  /** Weights in memory (`LlamaModel.size`). */
  modelBytes: number;
  /** The context's RAM + VRAM, as node-llama-cpp estimated when it created it. */
  contextBytes: number;
  /** Duration of the latest load, in seconds. */
  loadSeconds: number;
}

/** Loaded models reported through `Telemetry.modelLoaded`, each kept until its model is disposed. */
export class LoadedModels {
  private readonly views = new Map<LoadedModelView, { dispose(): void }>();

  add(view: LoadedModelView): void {
    if (this.views.has(view) || view.model.disposed) return;
    const listener = view.model.onDispose.createListener(() => this.remove(view));
    this.views.set(view, listener);
  }

  /** Memory per model name; disposed models are skipped. Cheap getters only: safe at 1 Hz. */
  memory(): ModelMemory[] {
    const byName = new Map<string, ModelMemory>();
    for (const view of this.views.keys()) {
      if (view.model.disposed) continue;
      let modelBytes = 0;
      let contextBytes = 0;
      try {
        modelBytes = view.model.size;
        if (!view.context.disposed) contextBytes = view.context.memoryUsage.ram + view.context.memoryUsage.vram;
      } catch {
        continue; // disposed between the check and the read
      }
      const entry = byName.get(view.name);
      if (entry) {
        entry.modelBytes += modelBytes;
        entry.contextBytes += contextBytes;
        entry.loadSeconds = view.loadMs / 1000;
      } else {
        byName.set(view.name, { name: view.name, modelBytes, contextBytes, loadSeconds: view.loadMs / 1000 });
      }
    }
    return [...byName.values()];
  }

  clear(): void {
    for (const listener of this.views.values()) listener.dispose();
    this.views.clear();
  }

  private remove(view: LoadedModelView): void {
    this.views.get(view)?.dispose();
    this.views.delete(view);
  }
}
