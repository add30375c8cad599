// Models: the catalog, one model's form generated from its input schema,
// checked in the page before anything is sent, and a job from it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  button, CARD, env, field, figure, follow, launch, link, nav, text, V1_TERMINAL, waitForJobPage,
  waitForStatus, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** What the page says about `field` being wrong: an alert or the field's own error text. */
async function complaint(page, field) {
  const alerts = [];
  for (const alert of await page.getByRole('alert').all()) {
    if (await alert.isVisible()) alerts.push(await text(alert));
  }
  const described = await field.evaluate((el) => {
    const ids = `${el.getAttribute('aria-describedby') ?? ''} ${el.getAttribute('aria-errormessage') ?? ''}`;
    return ids.split(/\s+/).filter(Boolean)
      .map((id) => document.getElementById(id))
      .filter((e) => e && e.offsetParent !== null)
      .map((e) => e.textContent.trim());
  });
  return [...alerts, ...described].filter(Boolean).join(' | ');
}

test("a model's form comes from its schema, refuses an invalid value in the page, and submits a valid one", { timeout: 90_000 }, async (t) => {
  await withPage(t, browser, async (page) => {
    const submits = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/v1/jobs/submit') submits.push(r);
    });

    await nav(page, 'Models');
    for (const slug of ['genq/title-card/text-to-video', 'genq/text-to-speech', 'genq/image-audio-to-video']) {
      assert.ok((await link(page, slug).count()) >= 1, `the catalog has no link "${slug}"`);
    }
    await follow(page, link(page, CARD).first());

    // TitleCardInput: prompt (1–300 chars), duration (1–60 s), background,
    // resolution (an enum of five sizes).
    const prompt = field(page, 'prompt');
    const duration = field(page, 'duration');
    const resolution = field(page, 'resolution');
    await prompt.waitFor();
    await field(page, 'background').waitFor();
    assert.equal(await resolution.evaluate((e) => e.tagName), 'SELECT', 'the enum "resolution" is not a select');
    const options = await resolution.evaluate((e) => [...e.options].map((o) => o.value).filter(Boolean));
    assert.deepEqual(
      [...options].sort(),
      ['1080x1080', '1080x1920', '1280x720', '1920x1080', '720x1280'],
      'the select does not offer the schema\'s enum',
    );
    const price = await text(page.locator('#model-price'));
    assert.match(price, /\d/, `#model-price shows no price: "${price}"`);
    figure(`model form: #model-price reads "${price}"`);

    // Over the schema's maximum: the page says so and sends nothing.
    await prompt.fill('Console model form');
    await duration.fill('61');
    await resolution.selectOption('1280x720');
    await button(page, 'Submit').click();
    await page.waitForTimeout(1_000);
    assert.equal(submits.length, 0, 'an invalid duration was sent to /v1/jobs/submit');
    assert.ok(!page.url().match(/\/console\/jobs\//), 'an invalid form went to a job page');
    const said = await complaint(page, duration);
    figure(`model form: duration 61 → "${said}"`);
    assert.match(said, /duration|60/i, `no message about the duration in the page (alerts/field errors: "${said}")`);

    // Valid: one request, and its job page reaches "completed".
    await duration.fill('2');
    await button(page, 'Submit').click();
    const id = await waitForJobPage(page);
    assert.equal(submits.length, 1, `${submits.length} requests to /v1/jobs/submit`);
    const sent = submits[0].postDataJSON();
    assert.equal(sent.model, CARD);
    figure(`model form: sent ${JSON.stringify(sent)}`);
    assert.equal(sent.input.prompt, 'Console model form');
    assert.equal(sent.input.duration, 2, 'the number field is not sent as a number');
    assert.equal(sent.input.resolution, '1280x720');
    await waitForStatus(page, 'completed', { timeout: 60_000, terminal: V1_TERMINAL });
    assert.equal(await page.getByRole('progressbar', { name: 'Progress' }).getAttribute('aria-valuenow'), '100');
    assert.equal(await page.locator('video').count(), 1, `job ${id} shows no video`);
  }, { key: env.key });
});
