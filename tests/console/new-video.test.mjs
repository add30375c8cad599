// "New video": the Image+Audio Video API's form, the job followed live on
// its page, and the video it made played and sought in the page.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  api, assertNonDecreasing, button, env, figure, fixture, launch, nav, seenFor,
  VIDEO_API_TERMINAL, waitForJobPage, waitForStatus, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('New video: the upload becomes a job page that goes live to COMPLETED, and its video plays and seeks', { timeout: 120_000 }, async (t) => {
  await withPage(t, browser, async (page) => {
    await nav(page, 'New video');
    await page.getByLabel('Image', { exact: true }).setInputFiles(fixture('image.png'));
    await page.getByLabel('Audio', { exact: true }).setInputFiles(fixture('audio.mp3'));
    const submitted = page.waitForRequest((r) => r.method() === 'POST');
    await button(page, 'Submit').click();
    await submitted;
    // The console takes us to the job's page; the test does not navigate.
    const id = await waitForJobPage(page);
    await waitForStatus(page, 'COMPLETED', { timeout: 90_000, terminal: VIDEO_API_TERMINAL });

    const bar = page.getByRole('progressbar', { name: 'Progress' });
    assert.equal(await bar.getAttribute('aria-valuenow'), '100', 'a COMPLETED job\'s bar is not at 100');
    const seen = await seenFor(page, id);
    figure(`new video job: progress seen ${seen.bars.join(' → ')}; status ${seen.statuses.join(' → ')}`);
    assertNonDecreasing(seen.bars, 'the progress bar');
    assert.equal(seen.bars.at(-1), 100);

    // The API agrees with the page.
    const status = await api(env.key, 'GET', `/api/status/${id}`);
    assert.equal(status.body?.status, 'COMPLETED', status.text);

    // The player: it plays (time moves), then seeks.
    const video = page.locator('video');
    await video.waitFor();
    const played = await video.evaluate(async (v) => {
      const wait = (what, ms) => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms (readyState ${v.readyState}, error ${v.error?.message})`)), ms);
        v.addEventListener(what, () => { clearTimeout(timer); resolve(); }, { once: true });
      });
      v.muted = true;
      if (v.readyState < 1) {
        if (v.preload === 'none') v.load();
        await wait('loadedmetadata', 15_000);
      }
      await v.play();
      const t0 = v.currentTime;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const t1 = v.currentTime;
      v.pause();
      const target = Math.min(6, v.duration - 0.5);
      const sought = wait('seeked', 10_000);
      v.currentTime = target;
      await sought;
      return {
        t0, t1, target, after: v.currentTime, duration: v.duration,
        width: v.videoWidth, height: v.videoHeight, error: v.error?.message ?? null,
      };
    });
    figure(`new video job: played ${played.t0.toFixed(2)} s → ${played.t1.toFixed(2)} s in 1.5 s, sought to ${played.after.toFixed(2)} s of ${played.duration.toFixed(2)} s`);
    assert.equal(played.error, null);
    assert.ok(played.t1 - played.t0 >= 0.5, `the video did not play: currentTime ${played.t0} → ${played.t1}`);
    assert.ok(Math.abs(played.duration - 8) < 0.2, `the video lasts ${played.duration} s; the audio 8 s`);
    assert.ok(Math.abs(played.after - played.target) < 0.1, `asked to seek to ${played.target}, at ${played.after}`);
    assert.deepEqual([played.width, played.height], [640, 480]);
  }, { key: env.key });
});
