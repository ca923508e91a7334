/**
 * Writes `.env.example` and prints the README's configuration table from the settings table in
 * server/config/config.ts, so the documentation cannot drift from the code.
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

if (process.argv.includes('--check')) {
  const current = readFileSync('.env.example', 'utf8');
  if (current !== envExample) {
    console.error('.env.example is out of date: run npm run config:doc');
    process.exit(1);
  }
} else {
  writeFileSync('.env.example', envExample);
  console.log(table);
}
