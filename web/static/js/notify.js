// Web Push for this browser: a service worker shows a notification when a
// message comes while no tab of Tern is visible. Browsers ask the user
// first, and only after a click: enable() is called from a button.
const SW = '/assets/sw.js';

export function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

// register installs the worker (it also relays notification clicks) and
// renews the subscription if the user already allowed notifications.
let openChat = () => {};
let listening = false;

export async function register(api, onOpenChat) {
  if (!('serviceWorker' in navigator)) return;
  openChat = onOpenChat; // the app signed in now; an earlier one is closed
  try {
    const reg = await navigator.serviceWorker.register(SW, { scope: '/' });
    if (!listening) {
      listening = true;
      navigator.serviceWorker.addEventListener('message', (ev) => {
        if (ev.data?.type === 'open_chat' && ev.data.chat_id) openChat(ev.data.chat_id);
      });
    }
    if (pushSupported() && Notification.permission === 'granted') await subscribe(api, reg);
  } catch { /* no worker: no notifications, the app works as before */ }
}

// enable asks for permission and subscribes; it says what happened.
export async function enable(api) {
  if (!pushSupported()) return 'This browser cannot show notifications.';
  const perm = await Notification.requestPermission();
  if (perm !== 'granted') return 'Notifications are blocked for this site.';
  try {
    await subscribe(api, await navigator.serviceWorker.ready);
    return 'Notifications are on.';
  } catch (e) {
    return 'Notifications could not be turned on: ' + (e.message || e);
  }
}

async function subscribe(api, reg) {
  const { public_key: key } = await api.call('GET', '/v1/push/vapid');
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromB64url(key) });
  await api.call('PUT', '/v1/devices/current/push', { provider: 'webpush', subscription: sub.toJSON() });
}

function fromB64url(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

function sameKey(buf, key) {
  if (!buf) return false;
  const a = new Uint8Array(buf);
  const b = fromB64url(key);
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
