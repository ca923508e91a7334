/**
 * Writes `.env.example` and the README's configuration table from the settings table in
 * server/config/config.ts, so the documentation cannot drift from the code; `--check` fails when
 * either is out of date.
 * Usage: npm run config:doc [-- --check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { settings } from '../server/config/config.js';

const rows = Object.values(settings).map((setting) => ({ env: setting.env, describe: setting.describe, defaultText: setting.defaultText, secret: 'secret' in setting }));

const envExample = [
  '# Every setting of the service with its default. Copy to .env and change what you need;',
  '# variables already set in the environment win over this file.',
  '',
  ...rows.flatMap((row) => [`# ${row.describe}${row.secret ? ' (secret: never logged)' : ''}`, `# ${row.env}=${row.defaultText === '(empty)' ? '' : row.defaultText}`, '']),
].join('\n');

const table = ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows.map((row) => `| \`${row.env}\` | ${row.defaultText === '(empty)' ? '(empty)' : `\`${row.defaultText}\``} | ${row.describe.replace(/\|/g, '\\|')} |`)].join('\n');

/** The README with its configuration table (the block that starts with the table's header) replaced. */
function readmeWithTable(readme: string): string {
  const start = readme.indexOf('| Variable | Default | Meaning |');
  if (start < 0) throw new Error('README.md has no configuration table');
  const end = readme.indexOf('\n\n', start);
  return readme.slice(0, start) + table + readme.slice(end < 0 ? readme.length : end);
}

const readme = readFileSync('README.md', 'utf8');
if (process.argv.includes('--check')) {
  const stale = [readFileSync('.env.example', 'utf8') !== envExample && '.env.example', readmeWithTable(readme) !== readme && "README.md's configuration table"].filter(Boolean);
  if (stale.length > 0) {
    console.error(`${stale.join(' and ')} out of date: run npm run config:doc`);
    process.exit(1);
  }
} else {
  writeFileSync('.env.example', envExample);
  writeFileSync('README.md', readmeWithTable(readme));
}
