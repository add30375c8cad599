// Shared helpers of the console's browser tests: Debian's Chromium driven
// by playwright-core, axe-core for accessibility, and genq's JSON APIs for
// setting things up.
//
// The tests run from `cargo test -p genq --test console`
// (crates/genq/tests/console.rs), which starts `genq serve` and passes:
//   GENQ_URL                  http://127.0.0.1:PORT
//   GENQ_KEY                  account A's API key (every scope)
//   GENQ_OTHER_KEY            account B's API key
//   GENQ_FIXTURES             a directory with image.png (640x480) and
//                             audio.mp3 (8 s)
//   GENQ_CONSOLE_SCREENSHOTS  where PNGs go (default target/console)
// and starts genq with one worker, webhooks to private addresses allowed
// (retried only after an hour), and inputs from private addresses allowed.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const CHROMIUM = process.env.GENQ_CHROMIUM || '/usr/bin/chromium';
export const CARD = 'genq/title-card/text-to-video';

function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: the console's browser tests run from ` +
        '`cargo test -p genq --test console`, which starts genq and sets ' +
        'GENQ_URL, GENQ_KEY, GENQ_OTHER_KEY and GENQ_FIXTURES',
    );
  }
  return value;
}

/** The harness's inputs, read when first used (so files load without them). */
export const env = {
  get url() {
    return need('GENQ_URL').replace(/\/+$/, '');
  },
  get key() {
    return need('GENQ_KEY');
  },
  get otherKey() {
    return need('GENQ_OTHER_KEY');
  },
  get fixtures() {
    return need('GENQ_FIXTURES');
  },
  get screenshots() {
    return process.env.GENQ_CONSOLE_SCREENSHOTS || path.join(REPO, 'target/console');
  },
};

export const fixture = (name) => path.join(env.fixtures, name);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A figure line, as the other benchmarks print them. */
export function figure(text) {
  console.log(`console: ${text}`);
}

// ---------------------------------------------------------------- browser

/**
 * Headless Chromium with the flags this machine needs: without the
 * background-networking ones Chromium keeps dialling Google on a machine
 * with no way out. playwright-core gives every launch a new empty profile
 * (--user-data-dir in a temporary directory) and adds --headless.
 */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Muted play() needs no gesture anyway; this keeps it so if a page
      // unmutes. Headless has no visible tab, so nothing may be throttled.
      '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

/**
 * Probes installed in every page before its own script runs (an init
 * script, which the page's CSP does not block): every message of every
 * EventSource the page opens (`window.__sse`, stamped on arrival, before the
 * page's own listeners run), and every change of a progress bar's
 * aria-valuenow and of a status text, by job id (`window.__bars`,
 * `window.__statuses`), stamped when the DOM changed.
 */
function probes() {
  if (window.__probes) return;
  window.__probes = true;
  window.__sse = [];
  window.__bars = [];
  window.__statuses = [];
  const Native = window.EventSource;
  if (Native) {
    window.EventSource = class extends Native {
      constructor(url, init) {
        super(url, init);
        const note = (event) => {
          let data = null;
          try {
            data = JSON.parse(event.data);
          } catch {
            data = event.data;
          }
          window.__sse.push({ t: performance.now(), type: event.type, url: String(url), data });
        };
        // Listeners added here run before any the page adds.
        this.addEventListener('job', note);
        this.addEventListener('message', note);
      }
    };
  }
  const pageJob = () => {
    const m = location.pathname.match(/^\/console\/jobs\/([^/]+)$/);
    return m ? decodeURIComponent(m[1]) : null;
  };
  const idOf = (el) => {
    const row = el.closest('[data-job-id]');
    return row ? row.getAttribute('data-job-id') : pageJob();
  };
  const lastBar = new Map();
  const lastStatus = new Map();
  const scan = () => {
    const t = performance.now();
    for (const el of document.querySelectorAll('[role="progressbar"]')) {
      const id = idOf(el);
      const raw = el.getAttribute('aria-valuenow');
      const value = raw === null ? null : Number(raw);
      if (lastBar.has(id) && lastBar.get(id) === value) continue;
      lastBar.set(id, value);
      window.__bars.push({ t, id, value });
    }
    for (const el of document.querySelectorAll('[data-field="status"], #job-status')) {
      const id = idOf(el);
      const text = (el.textContent || '').trim();
      if (lastStatus.has(id) && lastStatus.get(id) === text) continue;
      lastStatus.set(id, text);
      window.__statuses.push({ t, id, text });
    }
  };
  new MutationObserver(scan).observe(document, {
    subtree: true,
    childList: true,
    characterData: true,
    attributes: true,
    attributeFilter: ['aria-valuenow', 'role', 'data-job-id'],
  });
}

/**
 * Runs `fn(page, context)` in a new context of `browser` (signed in with
 * `key` when given), with the probes installed and dialogs accepted. Fails
 * the test on an uncaught page error or a Content-Security-Policy violation
 * (the console promises neither inline script nor inline style), and saves a
 * screenshot of the page under `failed/` when the test fails.
 */
export async function withPage(t, browser, fn, { key, contextOptions } = {}) {
  const context = await browser.newContext({
    baseURL: env.url,
    viewport: { width: 1280, height: 900 },
    ...contextOptions,
  });
  await context.addInitScript(probes);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = watchProblems(page);
  page.on('dialog', (dialog) => dialog.accept().catch(() => {}));
  try {
    if (key) await signIn(page, key);
    await fn(page, context);
    assert.deepEqual(problems, [], 'the page reported errors');
  } catch (error) {
    const name = String(t?.name ?? 'test').replace(/[^a-z0-9]+/gi, '-').slice(0, 80);
    const file = path.join(env.screenshots, 'failed', `${name}.png`);
    mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.log(`console: the page at ${page.url()} when "${t?.name}" failed: ${file}`);
    throw error;
  } finally {
    await context.close();
  }
}

/** Uncaught errors and CSP violations of `page` (and its later pages). */
export function watchProblems(page) {
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught in ${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    if (/Content.Security.Policy/i.test(message.text())) {
      problems.push(`CSP violation in ${page.url()}: ${message.text()}`);
    }
  });
  return problems;
}

export const onJobsList = (url) => url.pathname === '/console/jobs';
export const onJobPage = (url) => /^\/console\/jobs\/[^/]+$/.test(url.pathname);

/**
 * A form control by its accessible name. (getByLabel matches the label's
 * text, which for `prompt <span aria-hidden="true">*</span>` is "prompt *";
 * the accessible name leaves the hidden marker out.)
 */
export function field(page, name) {
  const by = (role) => page.getByRole(role, { name, exact: true });
  return by('textbox').or(by('spinbutton')).or(by('combobox')).or(by('listbox'))
    .or(by('checkbox')).or(by('radio')).or(page.getByLabel(name, { exact: true }));
}

/**
 * The input of a project's mapping field `label` on its "Use" form: a
 * control named by the label, or the text box in a group named by it (the
 * console puts each value in a fieldset whose legend is the field's label).
 */
export function valueField(page, label) {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return field(page, label).or(
    page.getByRole('group', { name: new RegExp(`^${escaped}\\b`) }).getByRole('textbox'),
  ).first();
}

export const apiKeyField = (page) => page.getByLabel('API key', { exact: true });
export const button = (page, name) => page.getByRole('button', { name, exact: true });
export const link = (page, name) => page.getByRole('link', { name, exact: true });

/** Signs in on the sign-in page and waits for the Jobs list. */
export async function signIn(page, key) {
  await page.goto('/console');
  await apiKeyField(page).fill(key);
  await Promise.all([
    page.waitForURL(onJobsList),
    button(page, 'Sign in').click(),
  ]);
}

/** Clicks a link and waits until its page has loaded. */
export async function follow(page, locator) {
  const target = new URL(await locator.evaluate((a) => a.href));
  await Promise.all([
    page.waitForURL((u) => u.pathname === target.pathname && u.search === target.search, { waitUntil: 'load' }),
    locator.click(),
  ]);
}

/** Follows one of the navigation links ("Jobs", "New video", …). */
export async function nav(page, name) {
  const navigation = page.getByRole('navigation');
  const scope = (await navigation.count()) > 0 ? navigation : page;
  await follow(page, link(scope, name).first());
}

/** Waits for the browser to be on a job's page and returns the job's id. */
export async function waitForJobPage(page, timeout = 30_000) {
  await page.waitForURL(onJobPage, { timeout });
  return jobIdOf(page);
}

export function jobIdOf(page) {
  return decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
}

export async function text(locator, timeout) {
  return ((await locator.textContent(timeout === undefined ? {} : { timeout })) ?? '').trim();
}

/** Polls `fn` until it returns something truthy; fails naming `what`. */
export async function until(what, fn, { timeout = 20_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const shown = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${shown})`);
    }
    await sleep(interval);
  }
}

/**
 * Waits for `#job-status` on a job page to read `want`, failing at once
 * (with `#job-error`'s text) if it reads one of `terminal` instead.
 */
export async function waitForStatus(page, want, { timeout = 60_000, terminal = [] } = {}) {
  const status = page.locator('#job-status');
  const deadline = Date.now() + timeout;
  for (;;) {
    const seen = await text(status, 2_000).catch(() => '(no #job-status)');
    if (seen === want) return;
    if (terminal.includes(seen)) {
      const error = await text(page.locator('#job-error'), 1_000).catch(() => '');
      assert.fail(`#job-status reads ${seen}, expected ${want}; #job-error: ${error || '(none)'}`);
    }
    if (Date.now() > deadline) {
      assert.fail(`#job-status still reads ${JSON.stringify(seen)} after ${timeout} ms, expected ${want}`);
    }
    await sleep(100);
  }
}

export const V1_TERMINAL = ['completed', 'failed', 'cancelled'];
export const VIDEO_API_TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];
export const PROVIDER_TERMINAL = ['SUCCESS', 'FAILED', 'CANCELLED'];

/** What the probes saw for job `id`: progress values and status texts. */
export async function seenFor(page, id) {
  return page.evaluate((id) => ({
    bars: window.__bars.filter((b) => b.id === id).map((b) => b.value),
    statuses: window.__statuses.filter((s) => s.id === id).map((s) => s.text),
  }), id);
}

export function assertNonDecreasing(values, what) {
  for (let i = 1; i < values.length; i++) {
    assert.ok(values[i] >= values[i - 1], `${what} went back: ${values.join(' → ')}`);
  }
}

// ------------------------------------------------------------- checks

const require = createRequire(import.meta.url);
let axeSource;

/**
 * Runs axe-core in the page and fails on any violation of impact serious
 * or critical (lesser ones are printed). The page's CSP (`script-src
 * 'self'`) would block a <script> tag, but not Playwright's evaluation
 * (DevTools' Runtime.evaluate is not subject to the page's CSP).
 */
export async function axeCheck(page, what) {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(axeSource);
  }
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => {
        const why = (n.failureSummary || '').split('\n').slice(1).join(' ').trim();
        return `${n.target.join(' ')}${why ? ` — ${why}` : ''}`;
      }),
    }));
  });
  const failing = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of violations) {
    if (!failing.includes(v)) {
      figure(`axe on ${what}: ${v.impact} ${v.id} (${v.help}) on ${v.nodes.join('; ')} (not failing)`);
    }
  }
  assert.equal(
    failing.length,
    0,
    `axe on ${what} (${page.url()}) found:\n` +
      failing
        .map((v) => `  ${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.join('\n    ')}`)
        .join('\n'),
  );
}

/** Saves a full-page PNG as `name` under GENQ_CONSOLE_SCREENSHOTS. */
export async function screenshot(page, name) {
  mkdirSync(env.screenshots, { recursive: true });
  const file = path.join(env.screenshots, name.endsWith('.png') ? name : `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * A fingerprint of what an <img> shows: its decoded pixels hashed in the
 * page (FNV-1a over the RGBA bytes). A blob: or data: URL can't be fetched
 * again under the console's `connect-src 'self'`, but it is same-origin,
 * so a canvas may read it.
 */
export async function imageFingerprint(locator) {
  return locator.evaluate(async (img) => {
    if (!img.getAttribute('src')) throw new Error('the image has no src yet');
    if (!img.complete || img.naturalWidth === 0) {
      await new Promise((resolve, reject) => {
        setTimeout(() => reject(new Error(`${img.src} did not load within 10 s`)), 10_000);
        img.addEventListener('load', resolve, { once: true });
        img.addEventListener('error', () => reject(new Error(`${img.src} did not load`)), { once: true });
      });
    }
    await img.decode().catch(() => {});
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const g = canvas.getContext('2d');
    g.drawImage(img, 0, 0);
    const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 0x811c9dc5;
    for (let i = 0; i < data.length; i++) {
      h ^= data[i];
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return { src: img.currentSrc || img.src, width: img.naturalWidth, height: img.naturalHeight, hash: h.toString(16) };
  });
}

// ------------------------------------------------------------------ API

/** A request to genq with `key` (x-api-key); JSON in and out. */
export async function api(key, method, route, body, headers = {}) {
  const h = { ...headers };
  if (key) h['x-api-key'] = key;
  let payload;
  if (body instanceof FormData || typeof body === 'string' || body instanceof URLSearchParams) {
    payload = body;
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const response = await fetch(env.url + route, { method, headers: h, body: payload, redirect: 'manual' });
  const raw = await response.text();
  let json;
  try {
    json = JSON.parse(raw);
  } catch {
    json = undefined;
  }
  return { status: response.status, body: json, text: raw, headers: response.headers };
}

/** Submits a title card (Jobs v1) and returns its job id. */
export async function submitCard(key, input, extra = {}) {
  const r = await api(key, 'POST', '/v1/jobs/submit', { model: CARD, input, ...extra });
  assert.equal(r.status, 200, `POST /v1/jobs/submit: ${r.status} ${r.text}`);
  return r.body.jobId;
}

/** Waits until the Jobs v1 job `id` is in one of `statuses`; returns its body. */
export async function waitV1(key, id, statuses = V1_TERMINAL, timeout = 60_000) {
  let last;
  return until(
    `v1 job ${id} to be ${statuses.join(' or ')}`,
    async () => {
      const r = await api(key, 'GET', `/v1/jobs/${id}`);
      last = `${r.status} ${r.text.slice(0, 300)}`;
      return r.status === 200 && statuses.includes(r.body.status) ? r.body : false;
    },
    { timeout, interval: 250 },
  ).catch((error) => {
    throw new Error(`${error.message}; GET /v1/jobs/${id} last answered ${last}`);
  });
}

/** Cancels a Jobs v1 job if it has not finished. */
export async function cancelV1(key, id) {
  const r = await api(key, 'POST', `/v1/jobs/${id}/cancel`);
  assert.ok([200, 409].includes(r.status), `cancel ${id}: ${r.status} ${r.text}`);
}

/** An Image+Audio Video API job (multipart, `POST /api/jobs`); returns its id. */
export async function submitVideo(key, image, audio, webhookUrl) {
  const form = new FormData();
  form.append('image', new Blob([readFileSync(image)]), path.basename(image));
  form.append('audio', new Blob([readFileSync(audio)]), path.basename(audio));
  if (webhookUrl) form.append('webhookUrl', webhookUrl);
  const r = await api(key, 'POST', '/api/jobs', form);
  assert.equal(r.status, 201, `POST /api/jobs: ${r.status} ${r.text}`);
  return r.body.jobId;
}

/** Creates a Provider project from `template`; returns its id. */
export async function createProject(key, template) {
  const r = await api(key, 'POST', '/api/provider/projects', template);
  assert.equal(r.status, 201, `POST /api/provider/projects: ${r.status} ${r.text}`);
  return r.body.data.projectId;
}

/** A Provider template with one text field and nothing fetched. */
export function cardTemplate(name = 'Console card', background = '#101820') {
  return {
    name,
    type: 'image',
    canvas: { width: 640, height: 360, background },
    fields: {
      headline: { label: 'Headline', type: 'text', required: true, maxLength: 80 },
    },
    layers: [
      { kind: 'rect', x: 0, y: 260, width: 640, height: 100, color: '#000000cc' },
      {
        kind: 'text', field: 'headline', x: 40, y: 100, width: 560, height: 140,
        size: 48, color: '#ffffff', align: 'center',
      },
      { kind: 'text', text: 'genq console', x: 40, y: 280, width: 560, height: 60, size: 28, color: '#dddddd' },
    ],
  };
}

/**
 * An HTTP server on 127.0.0.1 that accepts connections and never answers:
 * a job whose input URL points here stays PROCESSING (genq waits up to
 * 120 s) until it is cancelled, so the one worker is busy and the next job
 * stays pending.
 */
export async function stallServer() {
  const sockets = new Set();
  const server = http.createServer(() => {});
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: (name) => `http://127.0.0.1:${server.address().port}/${name}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port on 127.0.0.1 nobody listens on (bound, then let go). */
export async function closedPort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Percentile `p` (0–1) of `values` (nearest rank). */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}
