// Renders every Mermaid file given on the command line with the real mermaid
// library inside headless Chromium, and fails on the first render error.
// Usage: node render.mjs FILE.mmd...
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mermaidJS = readFileSync(require.resolve('mermaid/dist/mermaid.min.js'), 'utf8');
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('render.mjs: no diagrams given');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = 0;
try {
  const page = await browser.newPage();
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ content: mermaidJS });
  await page.evaluate(() => window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' }));
  for (const [i, file] of files.entries()) {
    const text = readFileSync(file, 'utf8');
    const result = await page.evaluate(async ({ text, id }) => {
      try {
        await window.mermaid.parse(text);
        const { svg } = await window.mermaid.render(id, text);
        return { ok: svg.includes('<svg'), size: svg.length };
      } catch (e) {
        return { ok: false, error: String(e && e.message || e) };
      }
    }, { text, id: `d${i}` });
    if (result.ok) {
      console.log(`ok   ${file} (${result.size} bytes of SVG)`);
    } else {
      failed++;
      console.log(`FAIL ${file}: ${result.error}`);
    }
  }
} finally {
  await browser.close();
}
console.log(`${files.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
