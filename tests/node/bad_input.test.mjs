// Proves: the C reader gives every kind of bad input in tests/c/test_malformed.c
// (>= 30 refused, plus the out-of-distribution warnings) the same status and the
// same exact message natively (build/native/test_malformed) and as WebAssembly
// under node (build/wasm/wasm_test_malformed.js), and docs/bad-input.md holds
// exactly those rows, so the table there cannot go stale.
// Regenerate the doc's tables: node tests/node/bad_input.test.mjs --write
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const DOC = join(repo, 'docs', 'bad-input.md');
const native = join(repo, 'build', 'native', 'test_malformed');
const wasm = join(repo, 'build', 'wasm', 'wasm_test_malformed.js');
const BEGIN = '<!-- begin generated: node tests/node/bad_input.test.mjs --write -->';
const END = '<!-- end generated -->';

// Rows "T\tkind\tinput\tstatus\tmessage" printed by test_malformed --table.
function rows(cmd, args) {
  const p = spawnSync(cmd, args, { encoding: 'utf8', cwd: repo, maxBuffer: 1 << 24, timeout: 300000 });
  assert.equal(p.status, 0, `${cmd} ${args.join(' ')} failed:\n${p.stdout}\n${p.stderr}`);
  return p.stdout.split('\n').filter((l) => l.startsWith('T\t')).map((l) => {
    const f = l.split('\t');
    assert.equal(f.length, 5, `malformed row: ${l}`);
    return { kind: f[1], input: f[2], status: f[3], message: f[4] };
  });
}

const cell = (s) => s.replace(/\|/g, '\\|');
const code = (s) => (s.includes('`') ? `\`\` ${cell(s)} \`\`` : `\`${cell(s)}\``);

function markdown(all) {
  const errors = all.filter((r) => r.kind === 'error');
  const warnings = all.filter((r) => r.kind === 'warning');
  return [
    BEGIN,
    '',
    `### Refused (${errors.length} kinds)`,
    '',
    '| # | input | status | message |',
    '|---|---|---|---|',
    ...errors.map((r, i) => `| ${i + 1} | ${cell(r.input)} | ${r.status} | ${code(r.message)} |`),
    '',
    `### Read, with a warning (${warnings.length} kinds)`,
    '',
    '| # | input | status | warning |',
    '|---|---|---|---|',
    ...warnings.map((r, i) => `| ${i + 1} | ${cell(r.input)} | ${r.status} | ${code(r.message)} |`),
    '',
    END,
  ].join('\n');
}

function generated(doc) {
  const a = doc.indexOf(BEGIN), b = doc.indexOf(END);
  assert.ok(a >= 0 && b > a, `${DOC} lacks the generated section markers`);
  return { before: doc.slice(0, a), section: doc.slice(a, b + END.length), after: doc.slice(b + END.length) };
}

test('native and wasm refuse the same bad inputs with the same messages; docs/bad-input.md lists them', { timeout: 600000 }, () => {
  assert.ok(existsSync(native), `missing ${native} (cmake --build --preset native)`);
  assert.ok(existsSync(wasm), `missing ${wasm} (cmake --build --preset wasm)`);
  const nat = rows(native, ['--table']);
  const js = rows(process.execPath, ['--no-experimental-fetch', wasm, '--table']);
  assert.deepEqual(js, nat, 'wasm rows differ from native rows');

  const errors = nat.filter((r) => r.kind === 'error');
  assert.ok(errors.length >= 30, `only ${errors.length} kinds of refused input`);
  assert.equal(new Set(nat.map((r) => r.input)).size, nat.length, 'each input kind once');
  for (const r of errors) {
    assert.match(r.status, /^CSAC_E_[A-Z]+$/, r.input);
    assert.ok(r.message.length >= 20, `${r.input}: message too short to be specific: ${r.message}`);
  }
  for (const r of nat.filter((x) => x.kind === 'warning')) assert.equal(r.status, 'CSAC_OK', r.input);
  for (const k of ['thick', 'MR', 'lungs', 'covers only']) assert.ok(nat.some((r) => r.kind === 'warning' && r.message.includes(k === 'thick' ? 'thicker than 8 mm' : k)), `a warning row for ${k}`);

  const want = markdown(nat);
  if (process.argv.includes('--write')) {
    const g = generated(readFileSync(DOC, 'utf8'));
    writeFileSync(DOC, g.before + want + g.after);
  }
  assert.equal(generated(readFileSync(DOC, 'utf8')).section, want,
    'docs/bad-input.md is out of date: node tests/node/bad_input.test.mjs --write');
});
