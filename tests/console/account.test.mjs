// Account: credits, the ledger, and an API key made with one scope, shown
// once, working, then revoked.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  api, button, CARD, env, field, figure, launch, nav, text, until, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Rows of the ledger: a table named "Ledger…", or the first table after a heading saying so. */
async function ledgerRows(page) {
  return page.evaluate(() => {
    const named = [...document.querySelectorAll('table')].find((t) => {
      const label = t.getAttribute('aria-label') ?? t.caption?.textContent ??
        (t.getAttribute('aria-labelledby') ?? '').split(/\s+/).map((id) => document.getElementById(id)?.textContent ?? '').join(' ');
      return /ledger/i.test(label);
    });
    const heading = [...document.querySelectorAll('h1, h2, h3, h4')].find((h) => /ledger/i.test(h.textContent));
    const table = named ?? (heading && [...document.querySelectorAll('table')].find(
      (t) => heading.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING,
    ));
    if (!table) return null;
    return [...table.querySelectorAll('tr')].filter((tr) => tr.querySelector('td')).map((tr) => tr.innerText.trim());
  });
}

test('Account shows credits and the ledger; a check_status key is shown once, works, and stops at "Revoke"', { timeout: 90_000 }, async (t) => {
  await withPage(t, browser, async (page) => {
    await nav(page, 'Account');
    const credits = await text(page.locator('#credits'));
    assert.match(credits, /\d/, `#credits shows no number: "${credits}"`);
    const ledger = await ledgerRows(page);
    assert.ok(ledger, 'no ledger table (a table named "Ledger", or one under a "Ledger" heading)');
    assert.ok(ledger.length >= 1, 'the ledger is empty, yet the account was opened with credits');
    figure(`account: #credits "${credits}", ${ledger.length} ledger rows, the first "${ledger[0].replace(/\s+/g, ' ')}"`);

    await field(page, 'check_status').check();
    await field(page, 'submit_job').uncheck();
    await button(page, 'Create key').click();
    const shown = page.locator('#new-key');
    await shown.waitFor();
    const key = await shown.evaluate((e) => ('value' in e && e.value ? e.value : e.textContent).trim());
    assert.ok(key.length >= 20 && !/\s/.test(key), `#new-key does not hold a key: "${key}"`);
    assert.notEqual(key, env.key);

    // It works, with just its scope.
    const list = await api(key, 'GET', '/v1/jobs');
    assert.equal(list.status, 200, `GET /v1/jobs with the new key: ${list.status} ${list.text}`);
    const submit = await api(key, 'POST', '/v1/jobs/submit', { model: CARD, input: { prompt: 'x' } });
    assert.equal(submit.status, 403, `a check_status key may submit: ${submit.status} ${submit.text}`);

    // Shown once: the Account page, opened again, does not show it. (Not
    // page.reload(): the key is shown in the answer to the form's POST, and
    // reloading that answer posts the form again, making another key.)
    await nav(page, 'Account');
    assert.equal(await page.locator('#new-key').count(), 0, '#new-key is still there on the Account page');
    assert.ok(!(await page.content()).includes(key), 'the new key is still in the Account page');

    // Its row (check_status only) has "Revoke".
    const revoke = { name: /^Revoke\b/ };
    const rows = page.locator('tr')
      .filter({ hasText: 'check_status' })
      .filter({ hasNotText: 'submit_job' })
      .filter({ has: page.getByRole('button', revoke) });
    assert.equal(await rows.count(), 1, `expected one check_status-only key with "Revoke"; tables:\n${await page.locator('table').allInnerTexts()}`);
    await Promise.all([page.waitForEvent('load'), rows.getByRole('button', revoke).click()]);
    await until('the revoked key to be refused', async () => (await api(key, 'GET', '/v1/jobs')).status === 401, { timeout: 5_000 });

    // The session's own key is untouched.
    await nav(page, 'Account');
    await page.locator('#credits').waitFor();
    assert.equal((await api(env.key, 'GET', '/v1/jobs')).status, 200);
  }, { key: env.key });
});
