import { watch, type FSWatcher } from 'node:fs';

/**
 * Calls `onChange` once a folder has been quiet for `debounceMs` after a change, so a file being
 * copied in is looked at when the copy is done, not at every write.
 */
export function watchFolder(folder: string, debounceMs: number, onChange: () => void): { close(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(folder, { persistent: false }, () => {
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    // A watcher error (the folder removed, too many watches) must not take the process down.
    watcher.on('error', () => undefined);
  } catch {
    watcher = undefined;
  }
  return {
    close() {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
