// Every page of the console through axe-core (no serious or critical
// violation), with a screenshot of each under target/console/.

import { after, before, test } from 'node:test';
import {
  axeCheck, CARD, cardTemplate, createProject, env, field, follow, launch, link, nav, screenshot,
  submitCard, valueField, waitForStatus, waitV1, withPage, V1_TERMINAL,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function check(page, name, what) {
  await page.waitForLoadState('load');
  await screenshot(page, `${name}.png`);
  await axeCheck(page, what);
}

test('the sign-in page passes axe', { timeout: 60_000 }, async (t) => {
  await withPage(t, browser, async (page) => {
    await page.goto('/console');
    await page.getByLabel('API key', { exact: true }).waitFor();
    await check(page, 'sign-in', 'the sign-in page');
  });
});

test('every signed-in page passes axe', { timeout: 120_000 }, async (t) => {
  const job = await submitCard(env.key, { prompt: 'Accessibility', duration: 2 });
  const project = await createProject(env.key, cardTemplate('Accessibility project'));
  const done = await waitV1(env.key, job);
  if (done.status !== 'completed') throw new Error(`the title card ended ${done.status}`);

  await withPage(t, browser, async (page) => {
    await check(page, 'jobs', 'Jobs');

    await page.goto(`/console/jobs/${job}`);
    await waitForStatus(page, 'completed', { terminal: V1_TERMINAL });
    await page.locator('video').waitFor();
    await check(page, 'job', 'a job page with a video');

    await nav(page, 'New video');
    await check(page, 'new-video', 'New video');

    await nav(page, 'Models');
    await check(page, 'models', 'Models');
    await follow(page, link(page, CARD).first());
    await field(page, 'prompt').waitFor();
    await check(page, 'model-form', `the ${CARD} form`);

    await nav(page, 'Projects');
    await check(page, 'projects', 'Projects');
    await page.goto(`/console/projects/${project}`);
    await field(page, 'Template JSON').waitFor();
    await page.getByRole('img', { name: 'Preview', exact: true }).waitFor();
    await check(page, 'project-edit', 'a project\'s page');
    await page.goto(`/console/projects/${project}/use`);
    await valueField(page, 'Headline').waitFor();
    await check(page, 'project-use', 'a project\'s "Use" form');

    await nav(page, 'Account');
    await page.locator('#credits').waitFor();
    await check(page, 'account', 'Account');
  }, { key: env.key });
});
