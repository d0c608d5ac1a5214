// Sign in with a phone number and the code it gets by SMS.
import { h } from './dom.js';

export function signIn(api, notice, done) {
  const phone = h('input', { id: 'signin-phone', type: 'tel', autocomplete: 'tel', inputmode: 'tel',
    placeholder: '+14155550101', required: true });
  const code = h('input', { id: 'signin-code', inputmode: 'numeric', autocomplete: 'one-time-code',
    pattern: '[0-9]{6}', maxlength: '6', required: true });
  const status = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite', text: notice || '' });
  const sendBtn = h('button', { type: 'submit', class: 'primary', text: 'Send code' });
  const signBtn = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const again = h('button', { type: 'button', class: 'link', text: 'Use another number' });

  const codeForm = h('form', { class: 'signin-step', hidden: true },
    h('label', { for: 'signin-code', text: 'Code' }), code, signBtn, again);
  const phoneForm = h('form', { class: 'signin-step' },
    h('label', { for: 'signin-phone', text: 'Phone number' }), phone, sendBtn);

  const busy = (b) => { sendBtn.disabled = b; signBtn.disabled = b; };

  phoneForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = phone.value.replace(/[\s().-]/g, '');
    if (!/^\+[1-9][0-9]{6,14}$/.test(p)) {
      status.textContent = 'Enter the number with + and the country code, like +14155550101.';
      return;
    }
    busy(true);
    status.textContent = 'Sending a code…';
    try {
      await api.requestCode(p);
      phone.value = p;
      phoneForm.hidden = true;
      codeForm.hidden = false;
      status.textContent = `We sent a 6-digit code to ${p}.`;
      code.focus();
    } catch (e) {
      status.textContent = e.code === 'rate_limited'
        ? `Too many codes asked for; try again in ${Math.ceil(e.retryAfter / 60)} min.`
        : e.message;
    } finally {
      busy(false);
    }
  });

  codeForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    busy(true);
    status.textContent = 'Signing in…';
    try {
      await api.verify(phone.value, code.value.trim());
      done();
    } catch (e) {
      status.textContent = e.code === 'invalid_code' ? 'That code is not right. Check it and try again.'
        : e.code === 'code_expired' ? 'That code expired. Ask for a new one.' : e.message;
      code.select();
    } finally {
      busy(false);
    }
  });

  again.addEventListener('click', () => {
    codeForm.hidden = true;
    phoneForm.hidden = false;
    code.value = '';
    status.textContent = '';
    phone.focus();
  });

  return h('main', { class: 'signin' },
    h('div', { class: 'signin-card' },
      h('img', { src: '/assets/icon.svg', alt: '', class: 'logo', width: '56', height: '56' }),
      h('h1', { text: 'Sign in to Tern' }),
      h('p', { class: 'hint', text: 'Your phone number gets a one-time code by SMS.' }),
      phoneForm, codeForm, status));
}
