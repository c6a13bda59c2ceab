// Drives examples/spa in headless Chromium (playwright-core, Debian's /usr/bin/chromium)
// against a real stores-api server in cookie mode. Started by checks/browser/run.sh,
// which passes everything through the environment:
//
//   SPA_URL         the example page, on the localhost site   (http://localhost:P1/)
//   API_URL         the API as the page calls it, same site   (http://localhost:P2)
//   DIRECT_URL      the API for this script's own HTTP calls  (http://127.0.0.1:P2)
//   ATTACKER_URL    checks/browser/attacker/, another site    (http://127.0.0.1:P3/)
//   ADMIN_USERNAME, ADMIN_PASSWORD   the server's bootstrapped admin
//   ACCESS_EXPIRES  the server's JWT_ACCESS_TOKEN_EXPIRES (seconds)
//   OUT_DIR         where the screenshot goes
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//
// Prints one `ok - ...` or `FAIL - ...` line per assertion, `# ...` lines for
// information, and exits 1 when anything failed.
import { chromium } from 'playwright-core';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.log(`FAIL - environment: ${name} is not set (run checks/browser/run.sh)`);
    process.exit(2);
  }
  return value;
}

const SPA_URL = env('SPA_URL');
const API_URL = env('API_URL').replace(/\/+$/, '');
const DIRECT_URL = env('DIRECT_URL').replace(/\/+$/, '');
const ATTACKER_URL = env('ATTACKER_URL');
const ADMIN_USERNAME = env('ADMIN_USERNAME');
const ADMIN_PASSWORD = env('ADMIN_PASSWORD');
const ACCESS_EXPIRES = Number(env('ACCESS_EXPIRES'));
const OUT_DIR = env('OUT_DIR');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');

const ACCESS_COOKIE = 'access_token_cookie';
const REFRESH_COOKIE = 'refresh_token_cookie';
const CSRF_COOKIES = ['csrf_access_token', 'csrf_refresh_token'];
const STEP_TIMEOUT = 15_000;

const started = Date.now();
let passed = 0;
let failed = 0;

function ok(condition, description, detail) {
  if (condition) {
    passed += 1;
    console.log(`ok - ${description}`);
  } else {
    failed += 1;
    console.log(`FAIL - ${description}${detail !== undefined ? ` (${detail})` : ''}`);
  }
  return Boolean(condition);
}

function info(text) {
  console.log(`# ${text}`);
}

// ----- the API, from Node (header mode, never through the browser) -------------------

async function direct(method, path, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(DIRECT_URL + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = text;
  }
  return { status: res.status, data };
}

async function headerLogin(username, password) {
  const { status, data } = await direct('POST', '/login', { body: { username, password } });
  if (status !== 200 || !data || typeof data.access_token !== 'string') {
    throw new Error(`plain login of ${username} answered ${status} ${JSON.stringify(data)}`);
  }
  return data.access_token;
}

// The stores' names as the admin sees them, through a new plain login each time (the
// run's access tokens live only a few seconds).
async function storeNames() {
  const token = await headerLogin(ADMIN_USERNAME, ADMIN_PASSWORD);
  const { status, data } = await direct('GET', '/store?limit=1000', { token });
  if (status !== 200 || !Array.isArray(data)) {
    throw new Error(`GET /store answered ${status} ${JSON.stringify(data)}`);
  }
  return data.map((s) => s.name);
}

// ----- the page ------------------------------------------------------------------------

const looksLikeJwt = (value) => /eyJ/.test(value) || value.split('.').length >= 3;

// Clicks and waits for the page's action counter (<body data-done>) to move on.
async function act(page, selector) {
  const before = Number(await page.evaluate(() => document.body.dataset.done));
  await page.click(selector);
  await page.waitForFunction(
    (n) => Number(document.body.dataset.done) > n && document.body.dataset.pending === '0',
    before,
    { timeout: STEP_TIMEOUT },
  );
}

async function text(page, selector) {
  return (await page.textContent(selector)) ?? '';
}

async function errorCode(page) {
  return page.evaluate(() => document.getElementById('error').dataset.error || '');
}

// What every step asserts: no JWT in reach of the page's scripts, and the token
// cookies HttpOnly whenever the browser holds them.
async function cookieCheck(page, context, step, { access, refresh }) {
  const seen = await page.evaluate(() => ({
    cookie: document.cookie,
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
  }));
  const values = seen.cookie
    .split(';')
    .map((p) => p.slice(p.indexOf('=') + 1).trim())
    .filter(Boolean);
  ok(
    !/eyJ/.test(seen.cookie) && !values.some(looksLikeJwt),
    `${step}: document.cookie holds no JWT`,
    seen.cookie,
  );
  ok(
    !/eyJ/.test(seen.local) && !/eyJ/.test(seen.session),
    `${step}: localStorage and sessionStorage hold no JWT`,
    `${seen.local} ${seen.session}`,
  );
  const cookies = await context.cookies();
  const byName = Object.fromEntries(cookies.map((c) => [c.name, c]));
  for (const [name, expected] of [
    [ACCESS_COOKIE, access],
    [REFRESH_COOKIE, refresh],
  ]) {
    const c = byName[name];
    if (expected === true) {
      ok(c && c.httpOnly, `${step}: the browser holds ${name}, HttpOnly`, c ? 'not HttpOnly' : 'absent');
    } else if (expected === false) {
      ok(!c, `${step}: the browser holds no ${name}`, c && `${c.value.slice(0, 12)}...`);
    } else if (c) {
      ok(c.httpOnly, `${step}: ${name} is HttpOnly`);
    }
  }
  return byName;
}

// ----- the run -------------------------------------------------------------------------

async function main() {
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const username = `spa-${suffix}`;
  const password = 'browser-check-pass-9';
  const storeName = `spa-store-${suffix}`;
  const csrfProbeName = `csrf-probe-${suffix}`;
  const staleName = `stale-store-${suffix}`;
  const attackerName = `attacker-store-${suffix}`;

  await storeNames(); // the server answers a plain login and the admin exists

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright starts Chromium with a new, empty temporary profile of its own.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  info(`browser: Chromium ${browser.version()} (${CHROMIUM})`);
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 1000 } });

    // Every API exchange the browser makes, with the bodies the page could read.
    const exchanges = [];
    const bodyReads = [];
    context.on('response', (res) => {
      const req = res.request();
      if (!req.url().startsWith(API_URL)) return;
      const entry = {
        method: req.method(),
        path: req.url().slice(API_URL.length),
        status: res.status(),
        at: Date.now(),
        body: null,
      };
      exchanges.push(entry);
      if (req.method() !== 'OPTIONS') {
        bodyReads.push(
          res
            .text()
            .then((t) => {
              entry.body = t;
            })
            .catch(() => {}),
        );
      }
    });
    const pageErrors = [];

    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));

    // 0. The page, told where the API is.
    await page.goto(`${SPA_URL}?api=${encodeURIComponent(API_URL)}`);
    ok((await page.inputValue('#api-base')) === API_URL, 'the page takes the API base URL from ?api=');
    await cookieCheck(page, context, 'before login', { access: false, refresh: false });

    // 1. Register.
    await page.fill('#username', username);
    await page.fill('#password', password);
    await act(page, '#register');
    ok(
      (await text(page, '#message')).includes('User created'),
      'register: the page shows the API\'s message',
      await text(page, '#error'),
    );

    // 2. Log in through cookies; the page then shows GET /me.
    await page.fill('#password', password);
    await act(page, '#login');
    const loginAt = Date.now();
    ok(
      (await text(page, '#me-username')) === username,
      'login: the page shows the user from GET /me',
      `#me-username=${await text(page, '#me-username')} #error=${await text(page, '#error')}`,
    );
    ok((await text(page, '#status')).includes(username), 'login: the page says it is logged in');
    await Promise.all(bodyReads);
    const login = exchanges.find((e) => e.method === 'POST' && e.path === '/login?delivery=cookie');
    let loginBody = null;
    try {
      loginBody = login && JSON.parse(login.body);
    } catch (_) {
      loginBody = null;
    }
    ok(login && login.status === 200, 'login: POST /login?delivery=cookie answered 200', login && login.status);
    ok(
      loginBody && typeof loginBody.csrf_access_token === 'string' && typeof loginBody.csrf_refresh_token === 'string' &&
        !('access_token' in loginBody) && !('refresh_token' in loginBody),
      'login: the body holds the two CSRF values and no token',
      login && login.body,
    );
    const jar = await cookieCheck(page, context, 'after login', { access: true, refresh: true });
    ok(
      jar[ACCESS_COOKIE] && jar[ACCESS_COOKIE].path === '/' && jar[ACCESS_COOKIE].sameSite === 'Lax',
      'after login: the access cookie has Path=/ and SameSite=Lax',
      jar[ACCESS_COOKIE] && `${jar[ACCESS_COOKIE].path} ${jar[ACCESS_COOKIE].sameSite}`,
    );
    ok(
      jar[REFRESH_COOKIE] && jar[REFRESH_COOKIE].path === '/refresh' && jar[REFRESH_COOKIE].sameSite === 'Lax',
      'after login: the refresh cookie has Path=/refresh and SameSite=Lax',
      jar[REFRESH_COOKIE] && `${jar[REFRESH_COOKIE].path} ${jar[REFRESH_COOKIE].sameSite}`,
    );
    ok(
      CSRF_COOKIES.every((n) => jar[n] && !jar[n].httpOnly),
      'after login: the CSRF cookies are readable by the page (not HttpOnly)',
      CSRF_COOKIES.map((n) => `${n}:${jar[n] ? jar[n].httpOnly : 'absent'}`).join(' '),
    );
    ok(
      loginBody && jar.csrf_access_token && jar.csrf_access_token.value === loginBody.csrf_access_token,
      'after login: the csrf_access_token cookie matches the login body',
    );

    // 3. Create a store while the login's token is fresh.
    await page.fill('#store-name', storeName);
    await act(page, '#create-store');
    ok(
      (await page.locator(`#stores li[data-name="${storeName}"]`).count()) === 1,
      'create store: the page lists the new store',
      await text(page, '#error'),
    );
    ok((await storeNames()).includes(storeName), 'create store: the API has it (GET /store, header token)');
    const create = exchanges.find((e) => e.method === 'POST' && e.path === '/store');
    ok(create && create.status === 201, 'create store: POST /store answered 201', create && create.status);

    // 3b. The double submit itself, from the page's own site: the cookie alone is not enough.
    const probes = await page.evaluate(
      async ({ api, name }) => {
        const send = async (headers) => {
          const r = await fetch(`${api}/store`, {
            method: 'POST',
            credentials: 'include',
            headers: { 'Content-Type': 'application/json', ...headers },
            body: JSON.stringify({ name }),
          });
          return { status: r.status, body: await r.json().catch(() => null) };
        };
        return { missing: await send({}), wrong: await send({ 'X-CSRF-TOKEN': 'not-the-value' }) };
      },
      { api: API_URL, name: csrfProbeName },
    );
    ok(
      probes.missing.status === 401 && probes.missing.body && probes.missing.body.error === 'csrf_token_invalid',
      'CSRF: a cookie POST /store without X-CSRF-TOKEN is a 401 csrf_token_invalid',
      JSON.stringify(probes.missing),
    );
    ok(
      probes.wrong.status === 401 && probes.wrong.body && probes.wrong.body.error === 'csrf_token_invalid',
      'CSRF: a cookie POST /store with a wrong X-CSRF-TOKEN is a 401 csrf_token_invalid',
      JSON.stringify(probes.wrong),
    );
    ok(!(await storeNames()).includes(csrfProbeName), 'CSRF: neither probe created a store');
    await cookieCheck(page, context, 'after create store', { access: true, refresh: true });
    info(`login to end of step 3: ${((Date.now() - loginAt) / 1000).toFixed(1)} s of the ${ACCESS_EXPIRES} s access lifetime`);

    // 4. Screenshot of the logged-in page.
    mkdirSync(OUT_DIR, { recursive: true });
    const shot = join(OUT_DIR, 'after-login.png');
    await page.screenshot({ path: shot, fullPage: true });
    ok(statSync(shot).size > 0, `screenshot: ${shot}`);

    // 5. Past the access token's lifetime: GET /me again, through one refresh.
    const wait = loginAt + (ACCESS_EXPIRES + 1.5) * 1000 - Date.now();
    info(`waiting ${(Math.max(wait, 0) / 1000).toFixed(1)} s for the access token to expire`);
    if (wait > 0) await sleep(wait);
    await cookieCheck(page, context, 'after expiry', { access: false, refresh: true });
    const beforeMe = exchanges.length;
    await act(page, '#show-me');
    const meFlow = exchanges.slice(beforeMe).filter((e) => e.method !== 'OPTIONS');
    info(`after expiry the page made: ${meFlow.map((e) => `${e.method} ${e.path} ${e.status}`).join(', ')}`);
    ok(
      meFlow.some((e) => e.method === 'POST' && e.path === '/refresh' && e.status === 200),
      'after expiry: the page refreshed (POST /refresh answered 200)',
    );
    ok(
      meFlow.length === 3 && meFlow[0].path === '/me' && meFlow[0].status === 401 && meFlow[2].path === '/me' && meFlow[2].status === 200,
      'after expiry: GET /me 401, POST /refresh, then GET /me retried once with 200',
    );
    ok(
      (await text(page, '#me-username')) === username,
      'after expiry: the page still shows the user from GET /me',
      await text(page, '#error'),
    );
    await Promise.all(bodyReads);
    const refreshed = meFlow.find((e) => e.path === '/refresh');
    ok(
      refreshed && refreshed.body && !/eyJ/.test(refreshed.body) && /csrf_access_token/.test(refreshed.body),
      'after expiry: the refresh body holds new CSRF values and no token',
      refreshed && refreshed.body,
    );
    const jar2 = await cookieCheck(page, context, 'after refresh', { access: true, refresh: true });
    ok(
      jar2.csrf_access_token && loginBody && jar2.csrf_access_token.value !== loginBody.csrf_access_token,
      'after refresh: the csrf_access_token cookie changed',
    );

    // 6. Another site tries to create a store with the visitor's cookies.
    const attacker = await context.newPage();
    const attackRequests = [];
    attacker.on('request', (req) => {
      if (req.method() === 'POST' && req.url().startsWith(`${API_URL}/store`)) attackRequests.push(req);
    });
    const attackUrl = `${ATTACKER_URL}?api=${encodeURIComponent(API_URL)}&name=${encodeURIComponent(attackerName)}`;
    ok(
      (await context.cookies()).some((c) => c.name === ACCESS_COOKIE),
      'cross-site: the browser holds a live access cookie while the other site is open',
    );
    const navigated = attacker.waitForURL((u) => u.href.startsWith(`${API_URL}/store`), { timeout: STEP_TIMEOUT });
    await attacker.goto(attackUrl);
    await navigated;
    for (let i = 0; i < 50 && attackRequests.length < 2; i += 1) await sleep(100);
    ok(attackRequests.length === 2, 'cross-site: the no-cors fetch and the form post both reached the API', attackRequests.length);
    for (const req of attackRequests) {
      const kind = req.isNavigationRequest() ? 'form post' : 'no-cors fetch';
      const res = await req.response();
      const headers = await req.allHeaders();
      const cookie = headers.cookie || '';
      info(`cross-site ${kind}: answered ${res ? res.status() : 'nothing'}, Cookie: ${cookie ? cookie.replace(/=[^;]*/g, '=...') : '(none)'}`);
      ok(!cookie.includes(ACCESS_COOKIE), `cross-site ${kind}: the browser did not attach the access cookie (SameSite=Lax)`);
      ok(res && res.status() !== 201, `cross-site ${kind}: not a 201`, res && res.status());
    }
    ok(
      !(await storeNames()).includes(attackerName),
      'cross-site: the API has no store with the attacker\'s name (checked with a header token)',
    );
    await attacker.close();
    await cookieCheck(page, context, 'after the cross-site attempt', { refresh: true });

    // 6b. A refreshed token is not fresh: the page shows the API's error.
    await page.fill('#store-name', staleName);
    await act(page, '#create-store');
    ok(
      (await errorCode(page)) === 'fresh_token_required' && (await text(page, '#error')).includes('The token is not fresh.'),
      'create store after refresh: the page shows 401 fresh_token_required and its message',
      await text(page, '#error'),
    );
    ok(!(await storeNames()).includes(staleName), 'create store after refresh: the API has no such store');

    // 7. Sessions: a second one from a plain login, listed by the page and ended there.
    const otherToken = await headerLogin(username, password);
    await act(page, '#list-sessions');
    const rows = await page.$$eval('#sessions tr', (trs) => trs.map((tr) => ({ id: tr.dataset.id, current: tr.dataset.current })));
    ok(rows.length === 2, 'sessions: the page lists two sessions', JSON.stringify(rows));
    ok(rows.filter((r) => r.current === 'true').length === 1, 'sessions: exactly one is marked current');
    const other = rows.find((r) => r.current === 'false');
    if (other) {
      await act(page, `#end-session-${other.id}`);
      ok((await text(page, '#message')).includes('Session revoked'), 'sessions: DELETE /sessions/{id} from the page', await text(page, '#error'));
      const left = await page.$$eval('#sessions tr', (trs) => trs.map((tr) => tr.dataset.id));
      ok(left.length === 1 && left[0] !== other.id, 'sessions: the page now lists only its own session', JSON.stringify(left));
      const { status, data } = await direct('GET', '/me', { token: otherToken });
      ok(status === 401 && data && data.error === 'token_revoked', 'sessions: the ended session\'s token is refused (token_revoked)', `${status} ${JSON.stringify(data)}`);
    } else {
      ok(false, 'sessions: a non-current session to end');
    }
    await cookieCheck(page, context, 'after sessions', { refresh: true });

    // 8. Reload: memory is gone, the cookies are not; the CSRF values come from them now.
    const beforeReload = exchanges.length;
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.done === '1' && document.body.dataset.pending === '0', null, {
      timeout: STEP_TIMEOUT,
    });
    ok(
      (await text(page, '#me-username')) === username,
      'reload: the page finds its session from the cookies and shows GET /me',
      await text(page, '#error'),
    );
    await act(page, '#list-sessions');
    ok((await page.locator('#sessions tr').count()) === 1, 'reload: GET /sessions lists the one session', await text(page, '#error'));
    await cookieCheck(page, context, 'after reload', { refresh: true });

    // 9. Log out once the access cookie has expired again: the API answers 401 and keeps
    //    the cookies, the page refreshes and logs out again; every cookie is cleared, the
    //    session is over on the server, and GET /me fails without a refresh attempt.
    const gone = Date.now() + (ACCESS_EXPIRES + 3) * 1000;
    while ((await context.cookies()).some((c) => c.name === ACCESS_COOKIE) && Date.now() < gone) await sleep(250);
    await cookieCheck(page, context, 'before logout, access expired', { access: false, refresh: true });
    const beforeLogout = exchanges.length;
    await act(page, '#logout');
    const afterReload = exchanges.slice(beforeReload).filter((e) => e.method !== 'OPTIONS');
    info(`after the reload the page made: ${afterReload.map((e) => `${e.method} ${e.path} ${e.status}`).join(', ')}`);
    const logoutFlow = exchanges.slice(beforeLogout).filter((e) => e.method !== 'OPTIONS');
    ok(
      logoutFlow.length === 3 &&
        logoutFlow[0].path === '/logout?scope=local' && logoutFlow[0].status === 401 &&
        logoutFlow[1].path === '/refresh' && logoutFlow[1].status === 200 &&
        logoutFlow[2].path === '/logout?scope=local' && logoutFlow[2].status === 200,
      'logout after expiry: POST /logout 401 (cookies kept), POST /refresh 200, POST /logout 200',
      logoutFlow.map((e) => `${e.method} ${e.path} ${e.status}`).join(', ') + ` ${await text(page, '#error')}`,
    );
    ok((await text(page, '#message')).includes('Successfully logged out'), 'logout: the page shows the API\'s message');
    {
      const token = await headerLogin(username, password);
      const { status, data } = await direct('GET', '/sessions', { token });
      ok(
        status === 200 && Array.isArray(data) && data.length === 1 && data[0].current === true,
        'logout: the browser\'s session is over on the server (GET /sessions from a new login lists only that one)',
        `${status} ${JSON.stringify(data)}`,
      );
      await direct('POST', '/logout', { token });
    }
    ok((await text(page, '#status')) === 'logged out', 'logout: the page says it is logged out');
    const jar3 = await cookieCheck(page, context, 'after logout', { access: false, refresh: false });
    ok(
      CSRF_COOKIES.every((n) => !jar3[n]),
      'logout: the CSRF cookies are cleared too',
      Object.keys(jar3).join(','),
    );
    const beforeMeOut = exchanges.length;
    await act(page, '#show-me');
    const meOut = exchanges.slice(beforeMeOut).filter((e) => e.method !== 'OPTIONS');
    ok(
      (await errorCode(page)) === 'authorization_required' && (await text(page, '#me-username')) === '',
      'after logout: GET /me fails and the page shows 401 authorization_required',
      await text(page, '#error'),
    );
    ok(!meOut.some((e) => e.path === '/refresh'), 'after logout: the page does not try to refresh');
    await cookieCheck(page, context, 'end', { access: false, refresh: false });

    // Across the whole run.
    await Promise.all(bodyReads);
    const leaks = exchanges.filter((e) => e.body && /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./.test(e.body));
    ok(leaks.length === 0, 'no API answer the browser received carried a JWT in its body', leaks.map((e) => `${e.method} ${e.path}`).join(', '));
    ok(pageErrors.length === 0, 'no uncaught script error on the page', pageErrors.join(' | '));
    info(`the browser made ${exchanges.length} API requests (preflights included)`);
    await context.close();
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (e) {
  ok(false, 'the run finished without an exception', e && e.stack ? e.stack.split('\n').slice(0, 4).join(' | ') : String(e));
}
console.log(`# ${passed} passed, ${failed} failed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed === 0 ? 0 : 1);
