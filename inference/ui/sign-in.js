// The sign-in screen of the hospital pages (the radiologist's and the ML engineer's), one copy for both.

/**
 * Wires `#signin-form` (`#username`, `#password`, `#signin-button`, message in `#signin-msg`): both fields are
 * needed; the session comes from `api('/api/v1/login')`; an account whose role is not in `roles` is signed out again
 * at once (a session that can do nothing here is not kept); failures are said in the page's words (`t`, keys
 * signInMissing, signInRole, signInFailed, signInThrottled, errTimeout, errNetwork, errServer; the page's own keys
 * through `show`).
 * `onSignedIn(session)` takes over on success; `onMessage(message)` lets a page show more beside a message.
 * Returns `show(message, username)` for the screen's own part of showing it, and `render()` for a language change.
 */
export function wireSignIn({ t, api, roles, onSignedIn, onMessage = () => {} }) {
  const $ = (selector) => document.querySelector(selector);
  let message = null;

  function render() {
    const box = $('#signin-msg');
    box.hidden = !message;
    box.className = `form-msg ${message?.kind ?? ''}`;
    box.textContent = message ? t(message.key, message.params) : '';
    onMessage(message);
  }

  function say(next) {
    message = next;
    render();
  }

  function show(next, username) {
    $('#signin-screen').hidden = false;
    say(next ?? null);
    if (username) $('#username').value = username;
    $('#password').value = '';
    ($('#username').value ? $('#password') : $('#username')).focus();
  }

  $('#signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const username = $('#username').value.trim();
    const password = $('#password').value;
    if (!username || !password) {
      say({ kind: 'error', key: 'signInMissing' });
      (username ? $('#password') : $('#username')).focus();
      return;
    }
    const button = $('#signin-button');
    say(null);
    button.disabled = true;
    button.textContent = t('signingIn');
    try {
      const session = await api('/api/v1/login', { method: 'POST', body: { username, password }, auth: false });
      if (!roles.includes(session.role)) {
        void fetch('/api/v1/logout', { method: 'POST', headers: { authorization: `Bearer ${session.token}` } }).catch(() => undefined);
        say({ kind: 'error', key: 'signInRole' });
        return;
      }
      $('#password').value = '';
      say(null);
      onSignedIn(session);
    } catch (err) {
      const status = err?.status ?? 0;
      // 429: the gateway holds sign-ins back after too many failures (CXR_RATE_LIMITED); trying again at once cannot help.
      const key =
        status === 401 || status === 400 ? 'signInFailed' : status === 429 ? 'signInThrottled' : status === 0 ? (err.code === 'TIMEOUT' ? 'errTimeout' : 'errNetwork') : 'errServer';
      say({ kind: 'error', key, params: { status } });
      $('#password').select();
    } finally {
      button.disabled = false;
      button.textContent = t('signIn');
    }
  });

  return { show, render };
}
