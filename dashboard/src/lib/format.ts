/*
 * Number formatting for the dashboard: every figure leaves here with its unit. Pure functions,
 * fixed English number style so tiles keep their width and the tests stay stable.
 */

/** Shown wherever a figure is unknown (no sample yet, field absent). */
export const NONE = '—';

const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Three significant figures at most, never exponent notation: 0.123, 1.23, 12.3, 123, 1234. */
export function sig3(value: number): string {
  const magnitude = Math.abs(value);
  if (magnitude >= 100 || magnitude === 0) return Math.round(value).toString();
  if (magnitude >= 10) return value.toFixed(1);
  if (magnitude >= 1) return value.toFixed(2);
  return value.toFixed(magnitude >= 0.001 ? 3 : 4).replace(/0+$/, '').replace(/\.$/, '');
}

function known(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** A count with thousands separators: `12,345`. */
export function formatCount(value: number | null | undefined): string {
  return known(value) ? grouped.format(value) : NONE;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** Bytes in binary units: `512 B`, `1.50 KiB`, `12.3 MiB`, `1.21 GiB`. */
export function formatBytes(value: number | null | undefined): string {
  if (!known(value)) return NONE;
  let scaled = Math.abs(value);
  let unit = 0;
  while (scaled >= 1024 && unit < BYTE_UNITS.length - 1) {
    scaled /= 1024;
    unit++;
  }
  // 1023.6 KiB would print as "1024 KiB": step up instead.
  if (unit < BYTE_UNITS.length - 1 && Math.round(scaled) >= 1024) {
    scaled /= 1024;
    unit++;
  }
  const sign = value < 0 ? '-' : '';
  return unit === 0 ? `${sign}${Math.round(scaled)} B` : `${sign}${scaled >= 100 ? Math.round(scaled) : scaled.toFixed(scaled >= 10 ? 1 : 2)} ${BYTE_UNITS[unit]}`;
}

/** A duration given in milliseconds: `0.42 ms`, `12.3 ms`, `123 ms`, `1.23 s`, `2 min 05 s`. */
export function formatMs(value: number | null | undefined): string {
  if (!known(value) || value < 0) return NONE;
  if (value < 1000) return `${sig3(value)} ms`;
  if (value < 60_000) return `${sig3(value / 1000)} s`;
  const totalSeconds = Math.round(value / 1000);
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = totalSeconds % 60;
  if (minutes < 60) return `${minutes} min ${seconds.toString().padStart(2, '0')} s`;
  return formatAge(value);
}

/** A coarse age or uptime: `5 s`, `3 min`, `2 h 05 min`, `3 d 4 h`. */
export function formatAge(ms: number | null | undefined): string {
  if (!known(ms)) return NONE;
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${(minutes % 60).toString().padStart(2, '0')} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** How long ago an epoch-ms moment was: `12 s ago`, `never` when absent. */
export function formatAgo(ts: number | null | undefined, now: number): string {
  if (!known(ts) || ts <= 0) return 'never';
  if (now - ts < 1000) return 'just now';
  return `${formatAge(now - ts)} ago`;
}

/** Tokens per second: `0 tok/s`, `42.5 tok/s`, `1.23k tok/s`. */
export function formatTokensPerSecond(value: number | null | undefined): string {
  if (!known(value)) return NONE;
  if (Math.abs(value) >= 10_000) return `${sig3(value / 1000)}k tok/s`;
  if (Math.abs(value) >= 1000) return `${(value / 1000).toFixed(2)}k tok/s`;
  return `${sig3(value)} tok/s`;
}

/** A 0..1 fraction as a percentage: `0%`, `4.2%`, `42%`, `100%`. */
export function formatPercent(fraction: number | null | undefined): string {
  if (!known(fraction)) return NONE;
  const percent = fraction * 100;
  return `${Math.abs(percent) >= 10 || percent === 0 ? Math.round(percent) : percent.toFixed(1)}%`;
}

/** CPU use in cores, as Node and top report it: `0.25 cores`, `1 core`. */
export function formatCores(value: number | null | undefined): string {
  if (!known(value)) return NONE;
  const text = sig3(value);
  return `${text} ${text === '1' || text === '1.00' ? 'core' : 'cores'}`;
}

/** Wall-clock time of an epoch-ms moment, `14:03:27`, in the browser's time zone. */
export function formatClock(ts: number | null | undefined): string {
  if (!known(ts)) return NONE;
  const date = new Date(ts);
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((part) => part.toString().padStart(2, '0')).join(':');
}

/** `used / total` of a pair of counts, such as slots: `1 / 2`. */
export function formatRatio(used: number | null | undefined, total: number | null | undefined): string {
  return known(used) && known(total) ? `${formatCount(used)} / ${formatCount(total)}` : NONE;
}
