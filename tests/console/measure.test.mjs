// Figures, printed, not asserted (beyond the page working): what the Jobs
// page costs on a first load, and how soon a progress event moves its bar
// with 50 jobs queued.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  cancelV1, env, figure, launch, percentile, submitCard, until, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;

test('the Jobs page\'s first load: bytes on the wire and time to a usable page', { timeout: 60_000 }, async (t) => {
  await withPage(t, browser, async (page, context) => {
    // Signed in; now forget every cached asset, as a first visit would.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.clearBrowserCache');
    const requests = new Map();
    cdp.on('Network.requestWillBeSent', (e) => {
      requests.set(e.requestId, { url: e.request.url, type: e.type, bytes: 0, streamed: 0, done: false });
    });
    cdp.on('Network.responseReceived', (e) => {
      const r = requests.get(e.requestId);
      if (!r) return;
      r.status = e.response.status;
      r.encoding = e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'] ?? '';
      r.fromCache = e.response.fromDiskCache || e.response.fromMemoryCache;
      r.streamed = e.response.encodedDataLength;
    });
    cdp.on('Network.dataReceived', (e) => {
      const r = requests.get(e.requestId);
      if (r) r.streamed += e.encodedDataLength;
    });
    cdp.on('Network.loadingFinished', (e) => {
      const r = requests.get(e.requestId);
      if (!r) return;
      r.bytes = e.encodedDataLength;
      r.done = true;
    });

    const response = await page.goto('/console/jobs', { waitUntil: 'load' });
    assert.equal(response.status(), 200);
    await page.waitForTimeout(500); // anything the script fetches after load
    const timing = await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0];
      return { ttfb: n.responseStart, dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd };
    });
    const rows = await page.locator('tr[data-job-id]').count();

    const finished = [...requests.values()].filter((r) => r.done);
    const open = [...requests.values()].filter((r) => !r.done);
    const total = finished.reduce((sum, r) => sum + r.bytes, 0);
    for (const r of requests.values()) {
      const path = new URL(r.url).pathname;
      figure(`  ${r.type} ${path} ${r.status ?? '-'} ${r.done ? kb(r.bytes) : `open, ${kb(r.streamed)} so far`}${r.encoding ? ` (${r.encoding})` : ''}${r.fromCache ? ' (cache)' : ''}`);
    }
    figure(
      `jobs page first load ${kb(total)} compressed in ${finished.length} requests, ` +
        `${timing.load.toFixed(0)} ms to the load event (${timing.dcl.toFixed(0)} ms to DOMContentLoaded, ` +
        `${timing.ttfb.toFixed(0)} ms to the first byte), ${rows} job rows` +
        (open.length ? `; plus ${open.length} open stream(s)` : ''),
    );
    assert.ok(finished.some((r) => r.type === 'Document'), 'the page itself was not counted');
  }, { key: env.key });
});

test('progress event to progress bar, on the Jobs list with 50 jobs queued', { timeout: 120_000 }, async (t) => {
  const ids = [];
  try {
    for (let i = 0; i < 50; i++) {
      ids.push(await submitCard(env.key, { prompt: `Load ${i + 1} of 50`, duration: 30, resolution: '1920x1080' }));
    }
    await withPage(t, browser, async (page) => {
      // A fresh load lists all 50; from here on the page follows events.
      await page.goto('/console/jobs');
      const listed = await page.locator('tr[data-job-id]').count();
      assert.ok(listed >= 50, `the Jobs page lists ${listed} jobs`);
      const mine = new Set(ids);
      // The stream opens with every queued job's state (progress 0); count
      // the events after that, which move a bar.
      const count = () => page.evaluate(
        (ids) => window.__sse.filter((e) => ids.includes(e.data?.id ?? e.data?.jobId) && e.data?.progress > 0).length,
        [...mine],
      );
      await until('40 progress events', async () => (await count()) >= 40, { timeout: 20_000, interval: 500 }).catch(() => {});
      await page.waitForTimeout(500); // the last events' bars
      const { sse, bars } = await page.evaluate(() => ({ sse: window.__sse, bars: window.__bars }));
      const { delays, missed } = eventToBar(sse, bars, mine);
      figure(
        `progress event to bar p50 ${percentile(delays, 0.5).toFixed(1)} ms, ` +
          `max ${Math.max(...delays).toFixed(1)} ms over ${delays.length} events ` +
          `(${missed} events whose value the bar never showed) with ${ids.length} jobs queued`,
      );
      assert.ok(delays.length > 0, 'no progress event ever moved a bar');
    }, { key: env.key });
  } finally {
    for (let i = 0; i < ids.length; i += 10) {
      await Promise.all(ids.slice(i, i + 10).map((id) => cancelV1(env.key, id)));
    }
  }
});

/**
 * Pairs each event that changes a job's progress with the first change of
 * that job's bar to the event's value at or after the event's arrival.
 */
function eventToBar(sse, bars, ids) {
  const delays = [];
  let missed = 0;
  const idOf = (e) => e.data?.id ?? e.data?.jobId;
  const events = sse
    .filter((e) => ids.has(idOf(e)) && typeof e.data?.progress === 'number')
    .sort((a, b) => a.t - b.t);
  for (const e of events) {
    const id = idOf(e);
    const before = bars.filter((b) => b.id === id && b.t < e.t).at(-1);
    if (before && before.value === e.data.progress) continue; // no change to show
    const shown = bars.find((b) => b.id === id && b.t >= e.t && b.value === e.data.progress);
    if (shown) delays.push(shown.t - e.t);
    else missed++;
  }
  return { delays, missed };
}
