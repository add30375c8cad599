// Projects: a template written as JSON with its live preview, saved, then
// used: the form from its mapping fields, an image job and a PDF job.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  api, button, cardTemplate, env, field, figure, follow, imageFingerprint, launch, link, nav,
  valueField,
  PROVIDER_TERMINAL, until, waitForJobPage, waitForStatus, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const onProjectPage = (url) => /^\/console\/projects\/[^/]+$/.test(url.pathname) && !url.pathname.endsWith('/new');

test('a new project previews live as its JSON changes, saves, and its "Use" form makes an image and a PDF', { timeout: 150_000 }, async (t) => {
  await withPage(t, browser, async (page) => {
    await nav(page, 'Projects');
    await follow(page, link(page, 'New project'));

    const json = field(page, 'Template JSON');
    const preview = page.getByRole('img', { name: 'Preview', exact: true });
    const name = `Console project ${Date.now()}`;
    await json.fill(JSON.stringify(cardTemplate(name, '#101820'), null, 2));
    await preview.waitFor({ state: 'attached' });
    // The preview of this JSON: the same picture twice, 400 ms apart.
    let last;
    const first = await until('the preview to draw and settle', async () => {
      const now = await imageFingerprint(preview);
      const settled = last && last.src === now.src && last.hash === now.hash;
      last = now;
      return settled ? now : false;
    }, { timeout: 20_000, interval: 400 });
    assert.deepEqual([first.width, first.height], [640, 360], 'the preview is not the canvas\'s size');

    // Another background: another picture.
    await json.fill(JSON.stringify(cardTemplate(name, '#7a1f3d'), null, 2));
    const second = await until('the preview to change', async () => {
      const now = await imageFingerprint(preview);
      return now.src !== first.src && now.hash !== first.hash ? now : false;
    }, { timeout: 15_000, interval: 200 });
    figure(`projects: preview ${first.hash} → ${second.hash} after the background changed`);

    await Promise.all([page.waitForURL(onProjectPage), button(page, 'Save').click()]);
    const projectId = new URL(page.url()).pathname.split('/').pop();
    const saved = await api(env.key, 'GET', `/api/provider/projects/${projectId}`);
    assert.equal(saved.status, 200, saved.text);
    assert.equal(saved.body.data.template.name, name);
    assert.equal(saved.body.data.template.canvas.background, '#7a1f3d', 'Save kept an older JSON');

    // "Use": the form from the mapping fields; an image, then a PDF.
    for (const [jobType, check] of [['image', checkImage], ['pdf', checkPdf]]) {
      if (jobType === 'pdf') await page.goto(`/console/projects/${projectId}`);
      await follow(page, link(page, 'Use'));
      await valueField(page, 'Headline').fill(`Made as ${jobType}`);
      await field(page, 'Job type').selectOption(jobType);
      await button(page, 'Submit').click();
      const id = await waitForJobPage(page);
      await waitForStatus(page, 'SUCCESS', { timeout: 60_000, terminal: PROVIDER_TERMINAL });
      await check(page, id);
    }
  }, { key: env.key });
});

async function checkImage(page, id) {
  const output = page.getByRole('img', { name: 'Output image', exact: true });
  await output.waitFor();
  const shown = await imageFingerprint(output);
  figure(`projects: image job ${id} shows a ${shown.width}x${shown.height} output`);
  assert.deepEqual([shown.width, shown.height], [640, 360]);
}

async function checkPdf(page, id) {
  const open = page.getByRole('link', { name: 'Open PDF', exact: true });
  await open.waitFor();
  const href = await open.evaluate((a) => a.href);
  const response = await page.request.get(href);
  assert.equal(response.status(), 200, `Open PDF (${href}) answered ${response.status()}`);
  assert.match(response.headers()['content-type'] ?? '', /^application\/pdf/);
  const body = await response.body();
  assert.equal(body.subarray(0, 5).toString('latin1'), '%PDF-', 'Open PDF is not a PDF');
  figure(`projects: pdf job ${id} links a ${body.length}-byte PDF`);
}
