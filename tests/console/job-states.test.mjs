// A job page in the states other than success: cancelled while pending,
// failed with its message, and its webhook deliveries with "Redeliver
// webhook".

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  api, button, cancelV1, closedPort, env, figure, fixture, launch, nav, stallServer,
  submitCard, submitVideo, text, until, VIDEO_API_TERMINAL, V1_TERMINAL, waitForJobPage,
  waitForStatus, waitV1, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('"Cancel job" on a pending job shows CANCELLED', { timeout: 90_000 }, async (t) => {
  // genq runs one worker: a job stuck fetching its input keeps it busy, so
  // the next job waits in the queue.
  const stall = await stallServer();
  let blocker;
  try {
    const r = await api(env.key, 'POST', '/v1/jobs/submit', {
      model: 'genq/image-audio-to-video',
      input: { image_url: stall.url('still.png'), audio_url: stall.url('voice.mp3') },
    });
    assert.equal(r.status, 200, r.text);
    blocker = r.body.jobId;
    await waitV1(env.key, blocker, ['processing'], 30_000);

    const id = await submitVideo(env.key, fixture('image.png'), fixture('audio.mp3'));
    await withPage(t, browser, async (page) => {
      await page.goto(`/console/jobs/${id}`);
      assert.equal(await text(page.locator('#job-status')), 'PENDING');
      await button(page, 'Cancel job').click();
      await waitForStatus(page, 'CANCELLED', { timeout: 20_000, terminal: VIDEO_API_TERMINAL });
      await page.reload();
      assert.equal(await text(page.locator('#job-status')), 'CANCELLED', 'the page forgot the cancel');
      assert.equal(await button(page, 'Cancel job').count(), 0, 'a cancelled job still offers "Cancel job"');
    }, { key: env.key });
    const status = await api(env.key, 'GET', `/api/status/${id}`);
    assert.equal(status.body?.status, 'CANCELLED', status.text);
  } finally {
    if (blocker) await cancelV1(env.key, blocker);
    await stall.close();
  }
});

test('a job that fails while rendering shows FAILED and its error message', { timeout: 90_000 }, async (t) => {
  // A PNG signature over garbage passes the upload's sniffing and fails
  // when the renderer decodes it (as in video_api.rs).
  const dir = mkdtempSync(path.join(tmpdir(), 'genq-console-'));
  const corrupt = path.join(dir, 'corrupt.png');
  const bytes = Buffer.alloc(8 + 4000);
  Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(bytes);
  for (let i = 0; i < 4000; i++) bytes[8 + i] = (i * 7919) % 251;
  writeFileSync(corrupt, bytes);

  await withPage(t, browser, async (page) => {
    await nav(page, 'New video');
    await page.getByLabel('Image', { exact: true }).setInputFiles(corrupt);
    await page.getByLabel('Audio', { exact: true }).setInputFiles(fixture('audio.mp3'));
    await button(page, 'Submit').click();
    await waitForJobPage(page);
    await waitForStatus(page, 'FAILED', { timeout: 60_000, terminal: ['COMPLETED', 'CANCELLED'] });
    // The status changes with the event; the error section is read again
    // from the server a moment later.
    await page.locator('#job-error [data-field="error"]').filter({ hasText: /\S/ })
      .waitFor({ timeout: 10_000 });
    const error = await text(page.locator('#job-error'));
    figure(`failed job: #job-error reads "${error}"`);
    assert.match(error, /image could not be decoded/i);
    assert.equal(await page.locator('video').count(), 0, 'a failed job shows a video');
  }, { key: env.key });
});

test('webhook deliveries list every attempt, and "Redeliver webhook" adds one', { timeout: 90_000 }, async (t) => {
  // Nobody listens there: the attempt fails at once, and genq (started with
  // --webhook-retry-schedule 0,3600) would not try again for an hour.
  const port = await closedPort();
  const id = await submitCard(env.key, { prompt: 'Webhook test', duration: 1 }, {
    webhookUrl: `https://127.0.0.1:${port}/hooks/console`,
  });
  const done = await waitV1(env.key, id, V1_TERMINAL);
  assert.equal(done.status, 'completed');

  await withPage(t, browser, async (page) => {
    await page.goto(`/console/jobs/${id}`);
    await page.getByRole('heading', { name: 'Webhook deliveries' }).waitFor();
    const attempts = page.locator('tr.attempt');
    const first = await until('a webhook attempt row', async () => {
      const n = await attempts.count();
      if (n === 0) await page.reload();
      return n;
    }, { timeout: 20_000, interval: 500 });
    figure(`webhook: ${first} attempt row(s) before "Redeliver webhook": ${await text(attempts.first())}`);

    await button(page, 'Redeliver webhook').click();
    await until(`attempt ${first + 1} after "Redeliver webhook"`, async () => {
      const n = await attempts.count();
      if (n > first) return n;
      await page.waitForTimeout(500);
      await page.reload();
      return false;
    }, { timeout: 15_000, interval: 100 });
    await page.waitForTimeout(1_000);
    await page.reload();
    assert.equal(await attempts.count(), first + 1, 'one redelivery made more than one attempt');
  }, { key: env.key });
});
