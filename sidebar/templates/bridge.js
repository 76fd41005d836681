/* Demo only: a stand-in for WeCom's JS-SDK (wx by default, ww with ?sdk=ww), backed by the simulator.
 * Signatures are checked by the simulator (/_sim/jsapi/verify), so a wrong one fails as in WeCom; the
 * current chat is whatever the demo toolbar at the top of the page says (a single chat, a customer group,
 * or 工作台: the app opened outside any chat); every call is recorded in window.__bridgeCalls, and a
 * sendChatMessage that WeCom would accept (text, image, news, miniprogram ... checked as in PROTOCOL.md
 * §5.5) also gets ``to``. Inert unless the page config says demo. */
(function () {
  'use strict';

  const cfg = JSON.parse(document.getElementById('sidebar-config').textContent);
  if (!cfg.demo) return;

  const STORAGE = 'scrm-sidebar-demo';
  const SINGLE = ['single_chat_tools', 'contact_profile'];
  const SEND_ENTRIES = ['single_chat_tools', 'group_chat_tools', 'chat_attachment', 'single_kf_tools'];
  const MSG_TYPES = ['text', 'image', 'video', 'file', 'news', 'miniprogram'];
  const kind = new URLSearchParams(window.location.search).get('sdk') === 'ww' ? 'ww' : 'wx';
  const calls = (window.__bridgeCalls = []);
  let saved = {};
  try { saved = JSON.parse(window.localStorage.getItem(STORAGE) || '{}') || {}; } catch (e) { saved = {}; }
  const ENTRIES = ['single_chat_tools', 'group_chat_tools', 'normal'];
  const choice = { entry: ENTRIES.includes(saved.entry) ? saved.entry : 'single_chat_tools',
    contact: saved.contact || '', chat: saved.chat || '' };
  let choices = { customers: [], groups: [] };

  // ------------------------------------------------------------------ the demo toolbar

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const bar = el('div', 'demo-bar');
  bar.id = 'demo-bar';
  const head = el('div', 'demo-row');
  const other = new URL(window.location.href);
  if (kind === 'wx') other.searchParams.set('sdk', 'ww'); else other.searchParams.delete('sdk');
  const switchSdk = el('a', 'demo-link', kind === 'wx' ? '改用 ww' : '改用 wx');
  switchSdk.href = other.pathname + other.search;
  head.append(el('span', 'demo-tag', '演示'), el('span', 'demo-title', '模拟企业微信聊天 · JS-SDK：' + kind), switchSdk);
  const row = el('div', 'demo-row');
  const seg = el('div', 'demo-seg');
  const single = el('button', '', '单聊');
  single.type = 'button';
  single.dataset.entry = 'single_chat_tools';
  const group = el('button', '', '客户群');
  group.type = 'button';
  group.dataset.entry = 'group_chat_tools';
  const workbench = el('button', '', '工作台');
  workbench.type = 'button';
  workbench.dataset.entry = 'normal';
  workbench.title = '从应用工作台打开：不在任何聊天中';
  seg.append(single, group, workbench);
  const contactSelect = el('select', 'demo-select');
  contactSelect.id = 'demo-contact';
  contactSelect.setAttribute('aria-label', '选择客户');
  const chatSelect = el('select', 'demo-select');
  chatSelect.id = 'demo-chat';
  chatSelect.setAttribute('aria-label', '选择客户群');
  row.append(seg, contactSelect, chatSelect);
  bar.append(head, row);
  document.body.insertBefore(bar, document.body.firstChild);

  function save() {
    try { window.localStorage.setItem(STORAGE, JSON.stringify(choice)); } catch (e) { /* private mode */ }
  }

  function renderBar() {
    for (const b of [single, group, workbench]) b.classList.toggle('on', b.dataset.entry === choice.entry);
    contactSelect.hidden = choice.entry !== 'single_chat_tools';
    chatSelect.hidden = choice.entry !== 'group_chat_tools';
  }

  function fill(select, items, value, label, empty) {
    select.replaceChildren();
    if (!items.length) select.appendChild(new Option(empty, ''));
    for (const item of items) select.appendChild(new Option(label(item), value(item)));
  }

  function changed() {
    save();
    renderBar();
    window.dispatchEvent(new CustomEvent('sidebar:context'));
  }

  for (const b of [single, group, workbench]) {
    b.addEventListener('click', () => {
      if (choice.entry === b.dataset.entry) return;
      choice.entry = b.dataset.entry;
      changed();
    });
  }
  contactSelect.addEventListener('change', () => { choice.contact = contactSelect.value; changed(); });
  chatSelect.addEventListener('change', () => { choice.chat = chatSelect.value; changed(); });
  renderBar();

  const loaded = fetch(cfg.api.demoContacts, { credentials: 'same-origin' })
    .then((r) => (r.ok ? r.json() : { customers: [], groups: [] }))
    .catch(() => ({ customers: [], groups: [] }))
    .then((data) => {
      choices = data;
      const has = (list, key, id) => list.some((x) => x[key] === id);
      if (!has(choices.customers, 'external_userid', choice.contact)) {
        choice.contact = choices.customers.length ? choices.customers[0].external_userid : '';
      }
      if (!has(choices.groups, 'chat_id', choice.chat)) choice.chat = choices.groups.length ? choices.groups[0].chat_id : '';
      fill(contactSelect, choices.customers, (c) => c.external_userid,
        (c) => (c.name || c.external_userid) + (c.remark ? '（' + c.remark + '）' : '') + ' · ' + c.orders + ' 单', '（没有客户）');
      fill(chatSelect, choices.groups, (g) => g.chat_id, (g) => g.name || g.chat_id, '（没有客户群）');
      contactSelect.value = choice.contact;
      chatSelect.value = choice.chat;
      save();
    });

  function toast(text) {
    const box = document.getElementById('toast');
    if (!box) return;
    box.textContent = text;
    box.className = 'toast toast-ok';
    box.hidden = false;
    setTimeout(() => { box.hidden = true; }, 2000);
  }

  // ------------------------------------------------------------------ the fake JS-SDK

  async function verify(kindOfTicket, sig, url) {
    try {
      const r = await fetch(cfg.simulator + '_sim/jsapi/verify', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ kind: kindOfTicket, noncestr: String(sig.nonceStr || ''), timestamp: String(sig.timestamp || ''),
          url: url.split('#')[0], signature: String(sig.signature || '') }),
      });
      return r.ok && (await r.json()).ok === true;
    } catch (e) {
      return false;
    }
  }

  /** One API call against the toolbar's choice, answered in the legacy shape ({err_msg}). */
  async function handle(name, params) {
    calls.push({ api: name, params: JSON.parse(JSON.stringify(params || {})), entry: choice.entry });
    const fail = (why) => ({ err_msg: name + ':fail ' + why });
    if (name === 'getContext') return { err_msg: 'getContext:ok', entry: choice.entry };
    if (name === 'getCurExternalContact') {
      await loaded;
      if (!SINGLE.includes(choice.entry) || !choice.contact) return fail('without context of external contact');
      return { err_msg: name + ':ok', userId: choice.contact };
    }
    if (name === 'getCurExternalChat') {
      await loaded;
      if (choice.entry !== 'group_chat_tools' || !choice.chat) return fail('without context of external chat');
      return { err_msg: name + ':ok', chatId: choice.chat };
    }
    if (name === 'sendChatMessage') {
      const type = params && params.msgtype;
      if (!SEND_ENTRIES.includes(choice.entry)) return fail('not in chat');
      if (!MSG_TYPES.includes(type) || !params[type]) return fail('invalid msgtype');
      if (type === 'text' && !params.text.content) return fail('empty content');
      if (type === 'news' && !params.news.link) return fail('link required');
      if (type === 'news' && !/^https?:\/\//.test(params.news.link)) return fail('invalid link');
      if (type === 'miniprogram' && !params.miniprogram.appid) return fail('appid required');
      if (type === 'miniprogram' && !/\.html$/.test(String(params.miniprogram.page || '').split('?')[0])) {
        return fail('page must end with .html');
      }
      if (['image', 'video', 'file'].includes(type) && !params[type].mediaid) return fail('mediaid required');
      calls[calls.length - 1].to = choice.entry === 'group_chat_tools' ? { chatId: choice.chat } : { userId: choice.contact };
      toast('已发送到聊天');
      return { err_msg: name + ':ok' };
    }
    return fail('not support');
  }

  function legacyWx() {
    let configured = null;
    let agentReady = false;
    let isReady = false;
    const ready = [];
    const errors = [];
    return {
      config(opts) {
        const url = window.location.href;
        configured = verify('corp', opts, url).then((ok) => {
          isReady = ok && opts.appId === cfg.corpId;
          if (isReady) ready.splice(0).forEach((cb) => cb());
          else errors.forEach((cb) => cb({ errMsg: 'config:fail invalid signature' }));
          return ok;
        });
      },
      ready(cb) { if (isReady) cb(); else ready.push(cb); },
      error(cb) { errors.push(cb); },
      agentConfig(opts) {
        verify('agent', opts, window.location.href).then((ok) => {
          agentReady = ok && String(opts.corpid) === cfg.corpId && String(opts.agentid) === String(cfg.agentId);
          if (agentReady) { if (opts.success) opts.success({ errMsg: 'agentConfig:ok' }); }
          else if (opts.fail) opts.fail({ errMsg: 'agentConfig:fail invalid signature' });
        });
      },
      invoke(name, params, cb) {
        if (!agentReady) { cb({ err_msg: name + ':fail no permission' }); return; }
        handle(name, params).then(cb);
      },
      get configured() { return configured; },
    };
  }

  function newWw() {
    let options = null;
    let registered = null;
    async function register() {
      const url = window.location.href.split('#')[0];
      const corp = await options.getConfigSignature(url);
      if (!(await verify('corp', corp, url))) {
        const res = { errMsg: 'config:fail invalid signature' };
        if (options.onConfigFail) options.onConfigFail(res);
        throw res;
      }
      const agent = await options.getAgentConfigSignature(url);
      if (!(await verify('agent', agent, url))) {
        const res = { errMsg: 'agentConfig:fail invalid signature' };
        if (options.onAgentConfigFail) options.onAgentConfigFail(res);
        throw res;
      }
      if (options.onConfigSuccess) options.onConfigSuccess({ errMsg: 'config:ok' });
      if (options.onAgentConfigSuccess) options.onAgentConfigSuccess({ errMsg: 'agentConfig:ok' });
    }
    async function run(name, params) {
      if (!options) throw { errMsg: name + ':fail not registered' };
      if (!registered) {
        registered = register();
        registered.catch(() => { registered = null; });
      }
      await registered;
      const res = await handle(name, params);
      const out = Object.assign({}, res, { errMsg: res.err_msg });
      delete out.err_msg;
      if (!/:ok$/.test(out.errMsg)) throw out;
      return out;
    }
    return {
      register(opts) { options = opts; registered = null; },
      getContext: (p) => run('getContext', p),
      getCurExternalContact: (p) => run('getCurExternalContact', p),
      getCurExternalChat: (p) => run('getCurExternalChat', p),
      sendChatMessage: (p) => run('sendChatMessage', p),
    };
  }

  if (kind === 'ww') window.ww = newWw(); else window.wx = legacyWx();
})();
