// stores-api browser example: plain JavaScript, no build step, no dependencies.
//
// The API sets the tokens as HttpOnly cookies (POST /login?delivery=cookie), so this
// script never sees a JWT and keeps none anywhere: not in localStorage, not in
// sessionStorage, not in a variable. What it does keep, in memory only, are the two
// CSRF values from the login and refresh bodies, which it repeats in the X-CSRF-TOKEN
// header of every POST, PUT, PATCH and DELETE (the double-submit pattern). After a page
// reload memory is empty, and it reads them from the non-HttpOnly csrf_access_token and
// csrf_refresh_token cookies instead.
//
// The access cookie lives exactly as long as the access token, so once the token has
// expired the browser stops sending it: a 401 `token_expired`, or a 401
// `authorization_required` while the page believes it is logged in, is answered by one
// POST /refresh and one retry of the request.
'use strict';

(function () {
  const DEFAULT_API = 'http://localhost:5000';
  const CSRF_HEADER = 'X-CSRF-TOKEN';
  const CSRF_COOKIE = { access: 'csrf_access_token', refresh: 'csrf_refresh_token' };
  const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
  const LOG_LINES = 50;

  // Everything this page remembers. No token: the browser holds those, out of reach.
  const state = {
    loggedIn: false,
    username: null,
    csrf: { access: null, refresh: null },
    refreshing: null, // the POST /refresh in flight, shared by concurrent requests
  };

  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, body, fallback) {
      const error = (body && body.error) || (status ? `http_${status}` : 'network_error');
      const message = (body && body.message) || fallback || 'No answer.';
      super(message);
      this.status = status;
      this.error = error;
      this.details = body && body.errors;
    }
  }

  // ----- settings and cookies ------------------------------------------------------

  function apiBase() {
    return $('api-base').value.trim().replace(/\/+$/, '');
  }

  // A cookie that the page may read (the CSRF ones are not HttpOnly; the token cookies
  // are, and never show up here).
  function readCookie(name) {
    for (const part of document.cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch (_) {
        return raw;
      }
    }
    return null;
  }

  function csrfValue(kind) {
    return state.csrf[kind] || readCookie(CSRF_COOKIE[kind]);
  }

  // Logged in as far as this page can tell: it logged in itself, or the refresh CSRF
  // cookie (which lives as long as the refresh token) is still there after a reload.
  function believesLoggedIn() {
    return state.loggedIn || readCookie(CSRF_COOKIE.refresh) !== null;
  }

  // What a cookie login or refresh body tells: the CSRF values.
  function takeTokenBody(body) {
    if (!body) return;
    if (typeof body.csrf_access_token === 'string') state.csrf.access = body.csrf_access_token;
    if (typeof body.csrf_refresh_token === 'string') state.csrf.refresh = body.csrf_refresh_token;
  }

  function forgetSession() {
    state.loggedIn = false;
    state.username = null;
    state.csrf = { access: null, refresh: null };
    renderStatus();
  }

  // ----- HTTP ----------------------------------------------------------------------

  async function readJson(res) {
    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  // One API call. `csrf` names the CSRF value to send on unsafe methods ('access' or
  // 'refresh'); `refreshable` allows one refresh-and-retry on a 401 that means "the
  // access token is gone or expired".
  async function request(method, path, opts = {}) {
    const { body, csrf = 'access', refreshable = true } = opts;
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (!SAFE_METHODS.has(method) && csrf) {
      const value = csrfValue(csrf);
      if (value) headers[CSRF_HEADER] = value;
    }
    let res;
    try {
      res = await fetch(apiBase() + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'include',
        cache: 'no-store',
      });
    } catch (e) {
      logLine(method, path, 'network error');
      throw new ApiError(0, null, `Could not reach ${apiBase()} (${e.message}). Is the API running, and is this page's origin in CORS_ALLOWED_ORIGINS?`);
    }
    const data = await readJson(res);
    logLine(method, path, res.status, data && data.error);

    if (
      res.status === 401 &&
      refreshable &&
      data &&
      (data.error === 'token_expired' || (data.error === 'authorization_required' && believesLoggedIn()))
    ) {
      await refresh(); // throws when the session cannot be refreshed
      return request(method, path, { ...opts, refreshable: false });
    }
    if (!res.ok) throw new ApiError(res.status, data, res.statusText);
    return { status: res.status, data, headers: res.headers };
  }

  function refresh() {
    if (!state.refreshing) {
      state.refreshing = (async () => {
        try {
          const { data } = await request('POST', '/refresh', { csrf: 'refresh', refreshable: false });
          takeTokenBody(data);
          state.loggedIn = true;
          renderStatus();
        } catch (e) {
          // Expired, revoked or reused: the API has cleared the refresh cookie too.
          forgetSession();
          throw e;
        }
      })().finally(() => {
        state.refreshing = null;
      });
    }
    return state.refreshing;
  }

  // ----- actions -------------------------------------------------------------------

  function credentials() {
    const username = $('username').value;
    const password = $('password').value;
    return { username, password };
  }

  async function register() {
    const { data } = await request('POST', '/register', { body: credentials(), refreshable: false, csrf: null });
    showMessage(data && data.message ? data.message : 'Registered.');
  }

  async function login() {
    const { data } = await request('POST', '/login?delivery=cookie', {
      body: credentials(),
      refreshable: false,
      csrf: null,
    });
    if (data && (data.access_token || data.refresh_token)) {
      // Not cookie mode: refuse to hold tokens in script reach at all.
      throw new ApiError(0, null, 'The API answered with tokens in the body: start it with JWT_TOKEN_LOCATION=headers,cookies (or cookies).');
    }
    takeTokenBody(data);
    state.loggedIn = true;
    $('password').value = '';
    renderStatus();
    showMessage('Logged in.');
    await showMe();
  }

  async function showMe() {
    let data;
    try {
      ({ data } = await request('GET', '/me'));
    } catch (e) {
      renderMe(null);
      throw e;
    }
    state.username = data.username;
    state.loggedIn = true;
    renderMe(data);
    renderStatus();
  }

  async function createStore() {
    const name = $('store-name').value;
    const { data } = await request('POST', '/store', { body: { name } });
    showMessage(`Store created: ${data.name} (id ${data.id}).`);
    $('store-name').value = '';
    await listStores();
  }

  async function listStores() {
    const { data, headers } = await request('GET', '/store?limit=100');
    $('stores-total').textContent = headers.get('X-Total-Count') || String(data.length);
    const list = $('stores');
    list.replaceChildren();
    for (const store of data) {
      const li = document.createElement('li');
      li.dataset.id = String(store.id);
      li.dataset.name = store.name;
      li.textContent = `${store.name} (id ${store.id})`;
      list.append(li);
    }
  }

  async function listSessions() {
    const { data } = await request('GET', '/sessions');
    const body = $('sessions');
    body.replaceChildren();
    for (const s of data) {
      const tr = document.createElement('tr');
      tr.dataset.id = s.id;
      tr.dataset.current = String(Boolean(s.current));
      if (s.current) tr.className = 'current';
      for (const value of [s.id, s.created_at, s.refreshed_at || '-', s.user_agent || '-', s.ip || '-']) {
        const td = document.createElement('td');
        td.textContent = value;
        tr.append(td);
      }
      const td = document.createElement('td');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'end-session';
      button.id = `end-session-${s.id}`;
      button.dataset.id = s.id;
      button.textContent = s.current ? 'End (this one)' : 'End';
      button.addEventListener('click', action(() => endSession(s.id, Boolean(s.current))));
      td.append(button);
      tr.append(td);
      body.append(tr);
    }
  }

  async function endSession(id, current) {
    const { data } = await request('DELETE', `/sessions/${encodeURIComponent(id)}`);
    showMessage(data && data.message ? data.message : 'Session ended.');
    if (current) {
      forgetSession();
      renderMe(null);
      $('sessions').replaceChildren();
      return;
    }
    await listSessions();
  }

  // A logout is a request like any other: once the access cookie has expired the API
  // answers 401 and keeps the cookies, the page refreshes and sends it again. Whatever
  // the answer, this page's login is over.
  async function logout() {
    const scope = $('logout-scope').value;
    try {
      const { data } = await request('POST', `/logout?scope=${encodeURIComponent(scope)}`);
      showMessage(data && data.message ? data.message : 'Logged out.');
    } finally {
      forgetSession();
      renderMe(null);
      $('sessions').replaceChildren();
    }
  }

  // ----- rendering -----------------------------------------------------------------

  function renderStatus() {
    $('status').textContent = state.loggedIn
      ? `logged in${state.username ? ` as ${state.username}` : ''}`
      : 'logged out';
    document.body.dataset.loggedIn = String(state.loggedIn);
  }

  function renderMe(user) {
    $('me').hidden = !user;
    $('me-id').textContent = user ? String(user.id) : '';
    $('me-username').textContent = user ? user.username : '';
    $('me-admin').textContent = user ? String(user.is_admin) : '';
    $('me-created').textContent = user ? user.created_at : '';
  }

  function clearMessages() {
    $('message').textContent = '';
    $('error').textContent = '';
    delete $('error').dataset.error;
  }

  function showMessage(text) {
    $('message').textContent = text;
  }

  const HINTS = {
    fresh_token_required: 'Creating stores needs the token of a login, and a refreshed one is not: log in again.',
    csrf_token_invalid: 'The X-CSRF-TOKEN header did not match the CSRF cookie.',
  };

  function showError(e) {
    const el = $('error');
    if (!(e instanceof ApiError)) {
      el.textContent = `Error: ${e && e.message ? e.message : String(e)}`;
      el.dataset.error = 'client_error';
      return;
    }
    let text = `${e.status || ''} ${e.error}: ${e.message}`.trim();
    if (e.details) text += ` ${JSON.stringify(e.details)}`;
    if (HINTS[e.error]) text += ` ${HINTS[e.error]}`;
    el.textContent = text;
    el.dataset.error = e.error;
  }

  function logLine(method, path, status, error) {
    const li = document.createElement('li');
    li.dataset.method = method;
    li.dataset.path = path;
    li.dataset.status = String(status);
    li.textContent = `${method} ${path} -> ${status}${error ? ` ${error}` : ''}`;
    const log = $('log');
    log.prepend(li);
    while (log.children.length > LOG_LINES) log.lastElementChild.remove();
  }

  // Wraps a handler: clears the messages, shows any error, and counts finished actions
  // in <body data-done> (and running ones in data-pending) so that a test can wait.
  function action(fn) {
    return async (event) => {
      if (event) event.preventDefault();
      clearMessages();
      const body = document.body;
      body.dataset.pending = String(Number(body.dataset.pending) + 1);
      try {
        await fn();
      } catch (e) {
        showError(e);
      } finally {
        body.dataset.pending = String(Number(body.dataset.pending) - 1);
        body.dataset.done = String(Number(body.dataset.done) + 1);
      }
    };
  }

  // ----- start-up ------------------------------------------------------------------

  function init() {
    const fromUrl = new URLSearchParams(window.location.search).get('api');
    $('api-base').value = fromUrl || DEFAULT_API;
    $('api-base').addEventListener('change', () => {
      forgetSession();
      renderMe(null);
    });

    $('register').addEventListener('click', action(register));
    $('credentials').addEventListener('submit', action(login));
    $('logout').addEventListener('click', action(logout));
    $('show-me').addEventListener('click', action(showMe));
    $('store-form').addEventListener('submit', action(createStore));
    $('list-stores').addEventListener('click', action(listStores));
    $('list-sessions').addEventListener('click', action(listSessions));

    renderStatus();
    renderMe(null);
    // After a reload: the cookies may still hold a session.
    if (believesLoggedIn()) action(showMe)();
  }

  init();
})();
