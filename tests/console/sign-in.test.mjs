// Signing in and out: the session cookie, what a wrong key gets, the
// headers every page carries, CSRF and login-CSRF.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  api, apiKeyField, button, env, launch, onJobsList, text, withPage,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const sessionCookie = async (context) =>
  (await context.cookies()).find((c) => c.name === 'genq_session');

test('a wrong key is refused with an alert and no session; the right key lands on Jobs', { timeout: 60_000 }, async (t) => {
  await withPage(t, browser, async (page, context) => {
    const requested = [];
    page.on('request', (r) => requested.push(r.url()));

    // Signed out, the Jobs page is the sign-in page.
    await page.goto('/console/jobs');
    await apiKeyField(page).waitFor();
    assert.equal(await button(page, 'Sign out').count(), 0, 'a "Sign out" button while signed out');

    await apiKeyField(page).fill('genq_not_a_key_0000000000000000');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      button(page, 'Sign in').click(),
    ]);
    assert.equal(refused.status(), 401, 'a wrong key answers 401');
    const alert = page.getByRole('alert');
    await alert.first().waitFor();
    assert.notEqual(await text(alert.first()), '', 'the alert says something');
    assert.equal(await sessionCookie(context), undefined, 'a wrong key got a genq_session cookie');
    await apiKeyField(page).waitFor(); // still the sign-in page

    await apiKeyField(page).fill(env.key);
    const [landed] = await Promise.all([
      page.waitForResponse(
        (r) => r.request().isNavigationRequest() && r.request().method() === 'GET' &&
          new URL(r.url()).pathname === '/console/jobs',
      ),
      page.waitForURL(onJobsList),
      button(page, 'Sign in').click(),
    ]);
    assert.equal(landed.status(), 200);
    await button(page, 'Sign out').waitFor();

    const cookie = await sessionCookie(context);
    assert.ok(cookie, 'signed in without a genq_session cookie');
    assert.equal(cookie.httpOnly, true, 'genq_session is not HttpOnly');
    assert.equal(cookie.sameSite, 'Strict', 'genq_session is not SameSite=Strict');
    assert.equal(cookie.path, '/');
    assert.equal(cookie.secure, false, 'Secure is for an https public URL only');
    assert.ok(!cookie.value.includes(env.key), 'the cookie holds the API key');
    assert.ok(
      !(await page.evaluate(() => document.cookie)).includes('genq_session'),
      "the page's script can read genq_session",
    );

    // The key appears in no URL and nowhere in the page.
    assert.ok(!page.url().includes(env.key), `the key is in the URL ${page.url()}`);
    for (const url of requested) assert.ok(!url.includes(env.key), `the key was in a request URL: ${url}`);
    assert.ok(!(await page.content()).includes(env.key), 'the key is in the Jobs page');

    const headers = landed.headers();
    const csp = headers['content-security-policy'] ?? '';
    for (const directive of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) {
      assert.ok(csp.includes(directive), `Content-Security-Policy lacks ${directive}: ${csp}`);
    }
    assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), `the CSP allows inline or eval: ${csp}`);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'same-origin');
    assert.match(headers['cache-control'] ?? '', /no-store/);
  });
});

test('"Sign out" ends the session at once: the old cookie opens nothing', { timeout: 60_000 }, async (t) => {
  let cookie;
  await withPage(t, browser, async (page, context) => {
    cookie = await sessionCookie(context);
    assert.ok(cookie);
    // While signed in, the cookie stands for the key on the dialects' routes.
    const before = await api(null, 'GET', '/v1/jobs', undefined, { cookie: `genq_session=${cookie.value}` });
    assert.equal(before.status, 200, `GET /v1/jobs with the session cookie: ${before.text}`);

    await Promise.all([page.waitForLoadState('load'), button(page, 'Sign out').click()]);
    await apiKeyField(page).waitFor();
    assert.equal(await sessionCookie(context), undefined, 'the cookie is still set after "Sign out"');
  }, { key: env.key });

  // Someone who kept the cookie's value gets the sign-in page…
  await withPage(t, browser, async (page, context) => {
    await context.addCookies([{ name: 'genq_session', value: cookie.value, url: env.url }]);
    const response = await page.goto('/console/jobs');
    await apiKeyField(page).waitFor();
    assert.equal(await button(page, 'Sign out').count(), 0, `the old cookie still opens ${page.url()}`);
    assert.notEqual(response.status(), 500);
  });

  // …and 401 from the API routes, and no events from the console's stream.
  const old = async (route) => {
    const controller = new AbortController();
    const response = await fetch(env.url + route, {
      headers: { cookie: `genq_session=${cookie.value}` },
      signal: controller.signal,
      redirect: 'manual',
    });
    controller.abort(); // an event stream would go on forever if it let us in
    return response;
  };
  for (const route of ['/v1/jobs', '/events']) {
    assert.equal((await old(route)).status, 401, `${route} with the ended session's cookie`);
  }
  const stream = await old('/console/events');
  assert.ok(
    !(stream.status === 200 && /event-stream/.test(stream.headers.get('content-type') ?? '')),
    '/console/events still streams to the ended session',
  );
});

test("a cookie-authenticated change needs the page's CSRF token; sign-in checks Origin", { timeout: 60_000 }, async (t) => {
  await withPage(t, browser, async (page, context) => {
    const cookie = `genq_session=${(await sessionCookie(context)).value}`;
    const token = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    assert.ok(token, 'no <meta name="csrf-token">');
    const job = { model: 'genq/title-card/text-to-video', input: { prompt: 'CSRF check', duration: 1 } };

    const bare = await api(null, 'POST', '/v1/jobs/submit', job, { cookie });
    assert.equal(bare.status, 401, `a POST with the cookie and no X-CSRF-Token: ${bare.status} ${bare.text}`);
    const wrong = await api(null, 'POST', '/v1/jobs/submit', job, { cookie, 'x-csrf-token': 'x'.repeat(43) });
    assert.equal(wrong.status, 401, `a POST with a wrong X-CSRF-Token: ${wrong.status} ${wrong.text}`);
    const ok = await api(null, 'POST', '/v1/jobs/submit', job, { cookie, 'x-csrf-token': token });
    assert.equal(ok.status, 200, `a POST with the page's X-CSRF-Token: ${ok.status} ${ok.text}`);
  }, { key: env.key });

  // Login CSRF: the sign-in form posted from another origin opens no session.
  await withPage(t, browser, async (page, context) => {
    await page.goto('/console');
    // Whatever cookie the sign-in page set (none is needed by the contract).
    const jar = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const form = await apiKeyField(page).evaluate((input) => {
      const f = input.form;
      return {
        action: f.action,
        method: (f.method || 'get').toUpperCase(),
        field: input.name,
        hidden: [...f.querySelectorAll('input[type=hidden]')].map((i) => [i.name, i.value]),
      };
    });
    assert.equal(form.method, 'POST', 'the key must be posted, never put in a URL');
    const post = async (origin) => {
      const body = new URLSearchParams(form.hidden);
      body.set(form.field, env.key);
      const response = await fetch(form.action, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin, ...(jar ? { cookie: jar } : {}) },
        body,
      });
      const cookies = response.headers.getSetCookie().filter((c) => c.startsWith('genq_session=') && !/genq_session=;|Max-Age=0/i.test(c));
      return { status: response.status, session: cookies.length > 0 };
    };
    const foreign = await post('http://evil.example');
    assert.ok(foreign.status >= 400, `sign-in from another origin answered ${foreign.status}`);
    assert.equal(foreign.session, false, 'sign-in from another origin set a session cookie');
    const own = await post(env.url);
    assert.equal(own.session, true, `sign-in from the console's own origin set no session (${own.status})`);
  });
});
