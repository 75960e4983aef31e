/**
 * Server-rendered login pages: no scripts, no external assets, one inline style sheet. Each page has
 * a language, a title, one `h1` in a `main` landmark, labelled controls and visible focus, so it
 * works from the keyboard and with a screen reader.
 */
export function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f5f5f4;color:#1c1917}
main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002}
h1{font-size:1.5rem;margin-top:0}dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{font-weight:600}
dd{margin:0;word-break:break-all}button,.button{display:inline-block;font:inherit;padding:.6rem 1.2rem;margin:.25rem 0;
border:2px solid #1d4ed8;border-radius:6px;background:#1d4ed8;color:#fff;text-decoration:none;cursor:pointer}
button:focus-visible,.button:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
ul.providers{list-style:none;padding:0}.error{border-left:4px solid #b91c1c;padding-left:1rem}
.code{font-family:ui-monospace,monospace;font-size:.9rem;color:#57534e}`;

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${esc(title)} · Switchboard</title><style>${STYLE}</style></head>
<body><main id="main"><h1>${esc(title)}</h1>${body}</main></body></html>`;
}

export function pickerPage(loginId: string, providers: { id: string; displayName: string }[]): string {
  const items = providers
    .map(
      (p) =>
        `<li><a class="button" href="/login/${esc(loginId)}?provider=${encodeURIComponent(p.id)}">Sign in with ${esc(p.displayName)}</a></li>`,
    )
    .join('');
  return page(
    'Sign in to add a device',
    `<p>Choose how you sign in. The device that showed you this link joins the network as you.</p><nav aria-label="Sign-in providers"><ul class="providers">${items}</ul></nav>`,
  );
}

export function noProvidersPage(loginId: string): string {
  return page(
    'Approval needed',
    `<p>This server has no sign-in provider configured. An administrator can add the device with:</p>
<p class="code">switchboard nodes register --user NAME --key ${esc(loginId)}</p>`,
  );
}

export interface DeviceView {
  hostname: string;
  os: string;
  machineKey: string;
}

export function confirmPage(
  confirmId: string,
  csrf: string,
  user: { loginName: string; displayName: string },
  device: DeviceView,
): string {
  return page(
    'Add this device?',
    `<p>You are signed in as <strong>${esc(user.displayName || user.loginName)}</strong> (${esc(user.loginName)}).
Only continue if you started this on the device below yourself: it will join the network as you.</p>
<dl aria-label="Device"><dt>Device</dt><dd>${esc(device.hostname || '(no name)')}</dd><dt>System</dt><dd>${esc(device.os || 'unknown')}</dd>
<dt>Machine</dt><dd class="code">${esc(device.machineKey.slice(0, 21))}…</dd></dl>
<form method="post" action="/login/confirm/${esc(confirmId)}"><input type="hidden" name="csrf" value="${esc(csrf)}">
<button type="submit">Add device</button></form>
<p>Not yours? Close this page; nothing is added.</p>`,
  );
}

export function donePage(user: { loginName: string }, device: { hostname: string }): string {
  return page(
    'Device added',
    `<p role="status"><strong>${esc(device.hostname || 'The device')}</strong> is now signed in as ${esc(user.loginName)}.
You can close this window; the device connects by itself.</p>`,
  );
}

export function refusalPage(title: string, message: string, hint: string, code: string): string {
  return page(
    title,
    `<div class="error" role="alert"><p><strong>What went wrong:</strong> ${esc(message)}</p>
<p><strong>What to do:</strong> ${esc(hint)}</p></div><p class="code">Reference: ${esc(code)}</p>`,
  );
}
