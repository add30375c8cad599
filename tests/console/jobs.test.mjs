// The Jobs list following the account's jobs live, and one account's jobs
// and projects kept from another's pages and events.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  cardTemplate, createProject, env, figure, launch, seenFor, submitCard, text, until,
  waitV1, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('a job submitted through the API appears in the open Jobs list and goes live to completed, without a reload', { timeout: 90_000 }, async (t) => {
  await withPage(t, browser, async (page) => {
    await page.evaluate(() => {
      window.__noReload = 1;
    });
    const id = await submitCard(env.key, { prompt: 'Hello', duration: 6 });
    const row = page.locator(`tr[data-job-id="${id}"]`);
    await row.waitFor({ timeout: 20_000 }).catch(() => {
      throw new Error(`no row for job ${id} appeared in the open Jobs list within 20 s`);
    });
    const status = row.locator('[data-field="status"]');
    await until('the row\'s status to read completed', async () => {
      const now = await text(status, 1_000);
      if (now === 'failed' || now === 'cancelled') throw new Error(`the row reads ${now}`);
      return now === 'completed';
    }, { timeout: 60_000 });
    assert.equal(await row.getByRole('progressbar').getAttribute('aria-valuenow'), '100');
    assert.equal(await page.evaluate(() => window.__noReload), 1, 'the Jobs page was reloaded');

    const seen = await seenFor(page, id);
    figure(`jobs list: the new row's status went ${seen.statuses.join(' → ')}, its bar ${seen.bars.join(' → ')}`);
    assert.ok(
      new Set(seen.statuses).size >= 2,
      `the row never changed in place (statuses seen: ${seen.statuses.join(', ')})`,
    );
    const body = await waitV1(env.key, id);
    assert.equal(body.status, 'completed');
  }, { key: env.key });
});

test("another account's job and project are \"not found\", and its jobs never reach this account's list or events", { timeout: 90_000 }, async (t) => {
  const secret = `Account B's private prompt ${randomUUID().slice(0, 8)}`;
  await withPage(t, browser, async (page) => {
    // A's Jobs list is open while B works.
    const otherJob = await submitCard(env.otherKey, { prompt: secret, duration: 1 });
    const done = await waitV1(env.otherKey, otherJob);
    assert.equal(done.status, 'completed');
    const otherProject = await createProject(env.otherKey, cardTemplate(`B's project ${secret}`));
    await page.waitForTimeout(1_000); // time for any event to arrive
    const leaked = await page.evaluate(
      (id) => window.__sse.filter((e) => JSON.stringify(e.data).includes(id)).length,
      otherJob,
    );
    assert.equal(leaked, 0, "B's job was announced on A's event stream");
    assert.equal(await page.locator(`[data-job-id="${otherJob}"]`).count(), 0, "B's job is in A's Jobs list");
    assert.ok(!(await page.content()).includes(secret));

    // B's job and project by id: the same "not found" as ids nobody has.
    const pages = [
      [`/console/jobs/${otherJob}`, `/console/jobs/${randomUUID()}`],
      [`/console/projects/${otherProject}`, `/console/projects/${randomUUID()}`],
      [`/console/projects/${otherProject}/use`, `/console/projects/${randomUUID()}/use`],
    ];
    for (const [theirs, nobodys] of pages) {
      const response = await page.goto(theirs);
      assert.equal(response.status(), 404, `${theirs} (account B's) answered ${response.status()}`);
      const body = await page.locator('body').innerText();
      assert.match(body, /not found/i, `${theirs} does not say "not found"`);
      const html = await page.content();
      assert.ok(!html.includes(secret), `${theirs} shows account B's data`);
      assert.ok(!/title-card|Headline/.test(body), `${theirs} shows something of B's job or project: ${body.slice(0, 300)}`);
      const missing = await page.goto(nobodys);
      assert.equal(missing.status(), 404, `${nobodys} answered ${missing.status()}`);
      const nobodysBody = await page.locator('body').innerText();
      const idOf = (p) => p.split('/')[3];
      assert.equal(
        body.replaceAll(idOf(theirs), 'ID'),
        nobodysBody.replaceAll(idOf(nobodys), 'ID'),
        `${theirs} differs from the page of an id nobody has`,
      );
    }
  }, { key: env.key });
});
