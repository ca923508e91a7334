/// <reference types="svelte" />
import type { ConnectionInfo } from '../../../../protocol/index.js';
import type { AdminApi } from '../services/admin-api.js';

/** The Connections page: open client connections and disconnects in progress. */
export class ConnectionsStore {
  connections = $state.raw<ConnectionInfo[]>([]);
  loaded = $state(false);
  error = $state<string | undefined>();
  closing = $state<Record<string, boolean>>({});
  /** Outcome of the last disconnect, shown above the table. */
  note = $state<{ ok: boolean; text: string } | undefined>();

  constructor(private readonly api: Pick<AdminApi, 'connections' | 'closeConnection'>) {}

  async refresh(): Promise<void> {
    try {
      const list = await this.api.connections();
      this.connections = [...list].sort((a, b) => a.openedAt - b.openedAt);
      this.loaded = true;
      this.error = undefined;
    } catch (error) {
      this.error = `Could not list connections: ${(error as Error).message}`;
    }
  }

  async disconnect(id: string): Promise<void> {
    if (this.closing[id]) return;
    this.closing[id] = true;
    try {
      await this.api.closeConnection(id);
      this.note = { ok: true, text: `Connection ${id} closed.` };
      this.connections = this.connections.filter((connection) => connection.id !== id);
    } catch (error) {
      this.note = { ok: false, text: `Could not close ${id}: ${(error as Error).message}` };
    } finally {
      delete this.closing[id];
    }
    await this.refresh();
  }
}
