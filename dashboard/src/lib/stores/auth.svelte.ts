/// <reference types="svelte" />
import type { TokenCheck } from '../services/admin-api.js';
import { isWellFormedToken } from '../services/urls.js';

/** Where the token lives: `sessionStorage`, so it is gone when the browser session ends. */
export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const TOKEN_KEY = 'llm-stream.admin-token';

/** The admin sign-in: the token, whether it is being checked, and why sign-in failed. */
export class AuthStore {
  token = $state<string | undefined>();
  checking = $state(false);
  /** Shown on the sign-in page: a refused token, an unreachable server, an expired session. */
  message = $state<string | undefined>();
  signedIn = $derived(this.token !== undefined);

  constructor(
    private readonly storage: TokenStorage | undefined,
    private readonly verify: (token: string) => Promise<TokenCheck>,
  ) {
    const saved = storage?.getItem(TOKEN_KEY);
    if (saved) this.token = saved;
  }

  /** Checks the token with the server; keeps it only when accepted. */
  async signIn(input: string): Promise<boolean> {
    const token = input.trim();
    this.message = undefined;
    if (!token) {
      this.message = 'Enter the admin token.';
      return false;
    }
    if (!isWellFormedToken(token)) {
      this.message = 'Wrong admin token: it contains characters an admin token never has.';
      return false;
    }
    this.checking = true;
    try {
      const result = await this.verify(token);
      if (result === 'refused') {
        this.message = 'Wrong admin token: the server refused it.';
        return false;
      }
      this.token = token;
      this.storage?.setItem(TOKEN_KEY, token);
      return true;
    } catch (error) {
      this.message = `Could not check the token: ${(error as Error).message}.`;
      return false;
    } finally {
      this.checking = false;
    }
  }

  /** Forgets the token; `message` explains why when it was not the user's choice. */
  signOut(message?: string): void {
    this.token = undefined;
    this.message = message;
    this.storage?.removeItem(TOKEN_KEY);
  }

  /** The server answered 401 to a call made with the stored token. */
  refused(): void {
    if (this.token !== undefined) this.signOut('The server no longer accepts this admin token. Sign in again.');
  }
}
