/* The guide's sidebar: JS-SDK (legacy wx or @wecom/jssdk ww), the current chat, JSON from /sidebar/api.
 * Everything from the server or the SDK is rendered with textContent / createElement, never innerHTML. */
(function () {
  'use strict';

  const cfg = JSON.parse(document.getElementById('sidebar-config').textContent);
  const API_LIST = ['getContext', 'getCurExternalContact', 'getCurExternalChat', 'sendChatMessage'];
  const CHANNELS = {
    tmall: ['天猫', 'ch-tmall'], jd: ['京东', 'ch-jd'], douyin: ['抖音', 'ch-douyin'],
    pos: ['门店', 'ch-pos'], miniapp: ['小程序', 'ch-miniapp'],
  };
  const STAGES = {
    new: ['新客', 'stage-new'], active: ['活跃', 'stage-active'],
    silent: ['沉默', 'stage-silent'], lost: ['流失', 'stage-lost'],
  };
  const ORDER_STATUS = {
    created: '待支付', paid: '已支付', refunded: '已退款', partially_refunded: '部分退款', cancelled: '已取消',
  };
  const FOLLOW_STATUS = { active: '跟进中', half: '待通过', lost: '已流失', deleted: '已删除', transferred: '已转接' };
  const TAG_SOURCE = { rule: '自动', bot: '系统' };
  const ATTACHMENT = { image: '图片', link: '链接', miniprogram: '小程序' };
  const SINGLE_ENTRIES = ['single_chat_tools', 'contact_profile'];
  const COMMISSION_LINES_SHOWN = 5;
  /** Entries where sendChatMessage works (PROTOCOL.md §5.5); contact_profile is not a chat. */
  const SEND_ENTRIES = ['single_chat_tools', 'group_chat_tools', 'chat_attachment', 'single_kf_tools'];

  const view = document.getElementById('view');
  const statusBox = document.getElementById('status');
  const statusText = document.getElementById('status-text');
  const statusHint = document.getElementById('status-hint');
  let generation = 0;
  /** The chat the page was opened in, as far as the JS-SDK has told us (the share view sends into it). */
  let chat = { entry: null, pending: true };
  let sdkReady = null;
  let tagLibrary = null;
  let sdkFailure = null;
  const signatures = new Map();

  // ------------------------------------------------------------------ DOM helpers

  /** An element with a class and text (text only ever through textContent). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function append(parent, ...children) {
    for (const child of children) if (child) parent.appendChild(child);
    return parent;
  }

  function card(title, extra) {
    const section = el('section', 'card');
    const head = append(el('div', 'card-head'), el('h2', 'card-title', title));
    if (extra) head.appendChild(extra);
    section.appendChild(head);
    return section;
  }

  function badge(text, className) {
    return el('span', 'badge ' + (className || ''), text);
  }

  function setState(state) {
    document.body.dataset.state = state;
  }

  function showStatus(text, hint, kind) {
    statusBox.hidden = false;
    statusBox.className = 'status' + (kind ? ' status-' + kind : '');
    statusText.textContent = text;
    statusHint.textContent = hint || '';
    const old = statusBox.querySelector('.status-action');
    if (old) old.remove();
  }

  function showError(err) {
    view.replaceChildren();
    showStatus(err.message || '出错了，请稍后重试。', err.hint || '', 'error');
    const action = el('button', 'btn status-action', err.status === 401 ? '重新登录' : '重试');
    action.type = 'button';
    action.addEventListener('click', () => {
      if (err.status === 401) window.location.href = cfg.signin;
      else boot();
    });
    statusBox.appendChild(action);
    setState('error');
  }

  let toastTimer = 0;
  function toast(text, kind) {
    const box = document.getElementById('toast');
    box.textContent = text;
    box.className = 'toast' + (kind ? ' toast-' + kind : '');
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 2200);
  }

  function money(value) {
    const n = Number(value || 0);
    return '¥' + n.toLocaleString('zh-CN', { minimumFractionDigits: n % 1 ? 2 : 0, maximumFractionDigits: 2 });
  }

  function day(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const pad = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  }

  function daysAgo(iso) {
    if (!iso) return '';
    const days = Math.floor((Date.now() - new Date(iso).getTime()) / 86400000);
    if (isNaN(days)) return '';
    return days <= 0 ? '今天' : days + ' 天前';
  }

  /** ``box`` with the picture at ``url`` over its text fallback, once it loads (https only; none if it fails). */
  function withPicture(box, url) {
    if (/^https?:\/\//.test(url || '')) {
      const img = document.createElement('img');
      img.alt = '';
      img.loading = 'lazy';
      img.referrerPolicy = 'no-referrer';
      img.addEventListener('load', () => box.classList.add('has-img'));
      img.addEventListener('error', () => img.remove());
      img.src = url.replace(/^http:\/\//, 'https://');
      box.appendChild(img);
    }
    return box;
  }

  function avatar(name, url, className) {
    return withPicture(el('div', 'avatar ' + (className || ''), (name || '客').trim().slice(0, 1) || '客'), url);
  }

  // ------------------------------------------------------------------ backend

  class ApiError extends Error {
    constructor(status, message, hint) {
      super(message);
      this.status = status;
      this.hint = hint || '';
    }
  }

  function apiError(status, data) {
    const message = data && typeof data.message === 'string' ? data.message : '';
    if (status === 401) {
      return new ApiError(401, message || '登录已失效。',
        (data && data.hint) || '登录已失效，请重新打开侧边栏（或刷新页面）以重新登录。');
    }
    if (status === 403) return new ApiError(403, message || '您没有权限执行此操作。', '如需开通权限，请联系门店店长或管理员。');
    if (status === 404) return new ApiError(404, message || '没有找到相关数据。');
    if (status >= 500) return new ApiError(status, message || '服务暂时不可用，请稍后重试。');
    return new ApiError(status, message || '请求失败（' + status + '），请稍后重试。');
  }

  async function api(path, body, method) {
    const init = { credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method) init.method = method;
    if (body !== undefined) {
      init.method = method || 'POST';
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, '网络连接失败，请检查网络后重试。');
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!resp.ok) throw apiError(resp.status, data);
    return data;
  }

  // ------------------------------------------------------------------ JS-SDK (PROTOCOL.md §5.3 / §5.4)

  function pageUrl() {
    return window.location.href.split('#')[0];
  }

  function signaturesFor(url) {
    const key = url.split('#')[0];
    if (!signatures.has(key)) {
      const pending = api(cfg.api.jssdkConfig + '?url=' + encodeURIComponent(key));
      pending.catch(() => signatures.delete(key));
      signatures.set(key, pending);
    }
    return signatures.get(key);
  }

  function sdkError(apiName, res) {
    const raw = (res && (res.err_msg || res.errMsg || res.message)) || '';
    const msg = String(raw);
    let text;
    if (apiName === 'config' || apiName === 'agentConfig' || /config:fail|40093|invalid signature/i.test(msg)) {
      text = '企业微信 JS-SDK 签名校验失败，无法读取当前聊天。';
      return new ApiError(0, text, '请确认本页面域名已设为应用的可信域名，然后关闭侧边栏重新打开。（' + msg + '）');
    }
    if (/no permission/i.test(msg)) {
      return new ApiError(0, '没有读取当前客户的权限。', '请联系管理员为应用开通「客户联系」权限，并确认您已开通客户联系功能。');
    }
    if (/without context|not (in|support)/i.test(msg)) {
      return new ApiError(0, '请在与客户的聊天工具栏中打开客户助手。', '当前页面不是从单聊或客户群的工具栏打开的。');
    }
    if (/cancel/i.test(msg)) return new ApiError(0, '已取消。');
    return new ApiError(0, '调用企业微信接口失败：' + apiName, msg);
  }

  function okMessage(res) {
    const msg = String((res && (res.err_msg || res.errMsg)) || '');
    return /:ok$/.test(msg) || msg === 'ok';
  }

  function initWx(wx) {
    return new Promise((resolve, reject) => {
      signaturesFor(pageUrl()).then((c) => {
        wx.error((res) => reject(sdkError('config', res)));
        wx.ready(() => wx.agentConfig({
          corpid: c.corpId, agentid: c.agentId, timestamp: c.agentConfig.timestamp,
          nonceStr: c.agentConfig.nonceStr, signature: c.agentConfig.signature, jsApiList: API_LIST,
          success: () => resolve(), fail: (res) => reject(sdkError('agentConfig', res)),
        }));
        wx.config({
          beta: true, debug: false, appId: c.corpId, timestamp: c.config.timestamp,
          nonceStr: c.config.nonceStr, signature: c.config.signature, jsApiList: ['agentConfig'].concat(API_LIST),
        });
      }, reject);
    });
  }

  function initWw(ww) {
    return new Promise((resolve) => {
      sdkFailure = null;
      ww.register({
        corpId: cfg.corpId, agentId: cfg.agentId, jsApiList: API_LIST,
        getConfigSignature: (url) => signaturesFor(url).then((c) => c.config),
        getAgentConfigSignature: (url) => signaturesFor(url).then((c) => c.agentConfig),
        onConfigFail: (res) => { sdkFailure = sdkError('config', res); },
        onAgentConfigFail: (res) => { sdkFailure = sdkError('agentConfig', res); },
      });
      // The signatures are fetched lazily, on the first API call; that call tells us whether they passed.
      resolve();
    });
  }

  function sdk() {
    if (window.ww && typeof window.ww.register === 'function') return { kind: 'ww', api: window.ww };
    if (window.wx && typeof window.wx.config === 'function') return { kind: 'wx', api: window.wx };
    return null;
  }

  async function call(name, params) {
    const found = sdk();
    if (found.kind === 'wx') {
      return new Promise((resolve, reject) => found.api.invoke(name, params || {}, (res) => {
        if (okMessage(res)) resolve(res); else reject(sdkError(name, res));
      }));
    }
    try {
      const res = await found.api[name](params || {});
      if (res && (res.errMsg || res.err_msg) && !okMessage(res)) throw res;
      return res || {};
    } catch (res) {
      if (sdkFailure) throw sdkFailure;
      throw res instanceof ApiError ? res : sdkError(name, res);
    }
  }

  function ensureSdk() {
    const found = sdk();
    if (!found) {
      return Promise.reject(new ApiError(0, '请在企业微信的聊天工具栏中打开客户助手。',
        '没有检测到企业微信 JS-SDK（普通浏览器中无法读取当前聊天）。'));
    }
    if (!sdkReady) {
      sdkReady = found.kind === 'wx' ? initWx(found.api) : initWw(found.api);
      sdkReady.catch(() => { sdkReady = null; });
    }
    return sdkReady;
  }

  // ------------------------------------------------------------------ boot

  async function boot() {
    const gen = ++generation;
    const stale = () => gen !== generation;
    setState('loading');
    setChat({ pending: true });
    document.getElementById('toast').hidden = true;
    view.replaceChildren();
    showStatus('正在连接企业微信……');
    try {
      await ensureSdk();
      const context = await call('getContext');
      if (stale()) return;
      const entry = context.entry || 'normal';
      setChat({ entry: entry, pending: SINGLE_ENTRIES.includes(entry) || entry === 'group_chat_tools' });
      if (entry === 'group_chat_tools') {
        const res = await call('getCurExternalChat');
        if (stale()) return;
        setChat({ entry: entry, chatId: res.chatId });
        showStatus('正在读取客户群信息……');
        const group = await api(cfg.api.group + encodeURIComponent(res.chatId));
        if (stale()) return;
        renderGroup(group);
        setChat({ entry: entry, chatId: res.chatId, name: group.name || '' });
      } else if (SINGLE_ENTRIES.includes(entry)) {
        const res = await call('getCurExternalContact');
        if (stale()) return;
        setChat({ entry: entry, userId: res.userId });
        showStatus('正在读取客户资料……');
        const data = await api(cfg.api.contact + encodeURIComponent(res.userId));
        if (stale()) return;
        renderContact(data, res.userId, entry);
        setChat({ entry: entry, userId: res.userId, name: (data.profile && data.profile.name) || '' });
      } else {
        throw new ApiError(0, '请在与客户的单聊或客户群的聊天工具栏中打开客户助手。', '当前入口：' + entry);
      }
      statusBox.hidden = true;
      setState('ready');
    } catch (err) {
      if (stale()) return;
      if (chat.pending) setChat({ entry: chat.entry, userId: chat.userId, chatId: chat.chatId });
      showError(err instanceof ApiError ? err : new ApiError(0, '页面出错了，请刷新重试。', String(err)));
    }
  }

  // ------------------------------------------------------------------ the customer

  function renderContact(data, externalUserid, entry) {
    const p = data.profile;
    const viewer = data.viewer || {};
    const tags = (p.tags || []).map((t) => ({ id: null, group: t.group, name: t.name, source: t.source }));
    view.replaceChildren();
    append(view,
      profileCard(p, viewer),
      statsCard(p.totals || {}),
      tagsCard(externalUserid, tags),
      notesCard(externalUserid, data.notes || []),
      scriptsCard(cfg.api.contact + encodeURIComponent(externalUserid) + '/scripts', { external_userid: externalUserid }),
      ordersCard(p.orders || [], (p.totals || {}).order_count || 0),
      guidesCard(p.guides || [], viewer.userid));
  }

  function profileCard(p, viewer) {
    const section = el('section', 'card hero');
    const mine = (p.guides || []).find((g) => g.userid === viewer.userid) || (p.guides || [])[0];
    const phone = (p.identities || []).find((i) => i.kind === 'phone');
    const top = el('div', 'hero-top');
    const who = el('div', 'hero-who');
    const nameRow = append(el('div', 'hero-name-row'), el('h1', 'hero-name', p.name || '未命名客户'));
    if (p.gender === 1 || p.gender === 2) nameRow.appendChild(el('span', 'gender g' + p.gender, p.gender === 1 ? '♂' : '♀'));
    if (p.stage && STAGES[p.stage]) nameRow.appendChild(badge(STAGES[p.stage][0], 'stage ' + STAGES[p.stage][1]));
    who.appendChild(nameRow);
    if (mine && mine.remark) who.appendChild(el('p', 'hero-remark', '备注：' + mine.remark));
    const meta = el('p', 'hero-meta');
    meta.appendChild(el('span', 'phone', phone ? phone.value : '未留手机号'));
    if (phone && !viewer.sees_full_phone) meta.appendChild(el('span', 'muted', ' · 已脱敏'));
    who.appendChild(meta);
    append(top, avatar(p.name, p.avatar, 'avatar-lg'), who);
    section.appendChild(top);

    const hasPoints = p.points !== null && p.points !== undefined;
    if (p.tier || hasPoints) {
      const member = el('div', 'member');
      append(member,
        append(el('div', 'member-tier'), el('span', 'member-label', '会员等级'), el('strong', 'member-value', p.tier || '会员')),
        append(el('div', 'member-points'), el('span', 'member-label', '积分'),
          el('strong', 'member-value', hasPoints ? Number(p.points).toLocaleString('zh-CN') : '—')));
      if (p.next_tier && p.next_tier_gap) {
        member.appendChild(el('p', 'member-next', '再消费 ' + money(p.next_tier_gap) + ' 升级' + p.next_tier));
      }
      section.appendChild(member);
    } else {
      section.appendChild(el('p', 'member-none', '尚未注册会员'));
    }
    if ((p.channels || []).length) {
      const channels = el('div', 'hero-channels');
      channels.appendChild(el('span', 'muted', '购买渠道'));
      for (const c of p.channels) channels.appendChild(channelBadge(c));
      section.appendChild(channels);
    }
    return section;
  }

  function channelBadge(channel) {
    const known = CHANNELS[channel] || [channel, 'ch-other'];
    return badge(known[0], 'channel ' + known[1]);
  }

  function statsCard(totals) {
    const section = el('section', 'stats');
    const items = [
      ['累计消费', money(totals.spend)], ['订单数', String(totals.order_count || 0)], ['客单价', money(totals.average_order)],
    ];
    for (const [label, value] of items) {
      append(section, append(el('div', 'stat'), el('strong', 'stat-value', value), el('span', 'stat-label', label)));
    }
    if (totals.last_purchase_at) {
      section.appendChild(el('p', 'stats-foot', '最近购买 ' + day(totals.last_purchase_at) + '（' + daysAgo(totals.last_purchase_at) + '）'));
    } else {
      section.appendChild(el('p', 'stats-foot', '暂无购买记录'));
    }
    return section;
  }

  // ------------------------------------------------------------------ tags

  function tagsCard(externalUserid, initial) {
    const toggle = el('button', 'link-btn', '编辑');
    toggle.type = 'button';
    const section = card('客户标签', toggle);
    section.id = 'tags';
    const current = el('div', 'chips');
    const editor = el('div', 'tag-editor');
    editor.hidden = true;
    const error = el('p', 'inline-error');
    error.hidden = true;
    append(section, current, error, editor);
    let tags = initial;

    const key = (t) => t.group + '\u0000' + t.name;
    function renderCurrent() {
      current.replaceChildren();
      if (!tags.length) current.appendChild(el('span', 'muted', '暂无标签，点「编辑」添加'));
      for (const t of tags) {
        const chip = el('span', 'chip' + (t.source === 'rule' ? ' chip-rule' : ''), t.name);
        chip.title = t.group;
        if (TAG_SOURCE[t.source]) chip.appendChild(el('small', 'chip-src', TAG_SOURCE[t.source]));
        current.appendChild(chip);
      }
    }

    function renderEditor() {
      editor.replaceChildren();
      const have = new Set(tags.map(key));
      for (const group of tagLibrary.groups) {
        const row = el('div', 'tag-group');
        row.appendChild(el('p', 'tag-group-name', group.name));
        const chips = el('div', 'chips');
        for (const t of group.tags) {
          const on = have.has(group.name + '\u0000' + t.name);
          const chip = el('button', 'chip chip-pick' + (on ? ' on' : ''), t.name);
          chip.type = 'button';
          chip.dataset.tagId = String(t.id);
          chip.setAttribute('aria-pressed', on ? 'true' : 'false');
          if (t.by_rule) {
            chip.disabled = true;
            chip.title = '由规则自动维护，不能手动修改';
          }
          chip.addEventListener('click', () => change(chip, t.id, !on));
          chips.appendChild(chip);
        }
        append(editor, append(row, chips));
      }
    }

    async function change(chip, tagId, add) {
      if (chip.classList.contains('busy')) return;
      chip.classList.add('busy');
      error.hidden = true;
      try {
        const body = add ? { add: [tagId], remove: [] } : { add: [], remove: [tagId] };
        const res = await api(cfg.api.contact + encodeURIComponent(externalUserid) + '/tags', body);
        tags = res.tags;
        renderCurrent();
        renderEditor();
        toast(add ? '已添加标签' : '已移除标签');
      } catch (err) {
        chip.classList.remove('busy');
        error.textContent = err.message + (err.status === 401 ? ' ' + err.hint : '');
        error.hidden = false;
        toast(err.status === 403 ? '没有权限修改该客户的标签' : '标签未修改', 'error');
      }
    }

    toggle.addEventListener('click', async () => {
      if (!editor.hidden) {
        editor.hidden = true;
        toggle.textContent = '编辑';
        return;
      }
      toggle.disabled = true;
      try {
        if (!tagLibrary) tagLibrary = await api(cfg.api.tags);
        renderEditor();
        editor.hidden = false;
        toggle.textContent = '完成';
      } catch (err) {
        error.textContent = err.message + (err.hint ? ' ' + err.hint : '');
        error.hidden = false;
      } finally {
        toggle.disabled = false;
      }
    });
    renderCurrent();
    return section;
  }

  // ------------------------------------------------------------------ talk scripts

  /** Ranked scripts from ``listUrl`` (?q= searches); sending records the send against ``target``. */
  function scriptsCard(listUrl, target) {
    const section = card('推荐话术');
    section.id = 'scripts';
    section.hidden = true;
    const search = document.createElement('input');
    search.type = 'search';
    search.className = 'search';
    search.placeholder = '搜索话术，如「复购」「新客」';
    search.setAttribute('aria-label', '搜索话术');
    const list = el('div', 'scripts');
    const empty = el('p', 'muted empty', '没有匹配的话术');
    empty.hidden = true;
    append(section, search, list, empty);
    let seq = 0;
    let timer = 0;

    async function load(q) {
      const mine = ++seq;
      try {
        const data = await api(listUrl + '?q=' + encodeURIComponent(q || ''));
        if (mine !== seq) return;
        section.hidden = false;
        list.replaceChildren();
        const scripts = (data && data.scripts) || [];
        empty.hidden = scripts.length > 0;
        for (const s of scripts) list.appendChild(scriptItem(s, target));
      } catch (err) {
        if (mine !== seq) return;
        if (err.status === 404) { section.hidden = true; return; } // not deployed (yet)
        section.hidden = false;
        list.replaceChildren(el('p', 'inline-error', err.message));
      }
    }

    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => load(search.value.trim()), 250);
    });
    load('');
    return section;
  }

  function scriptItem(s, target) {
    const item = el('article', 'script' + (s.matched ? ' matched' : ''));
    item.dataset.scriptId = String(s.id);
    const head = el('div', 'script-head');
    head.appendChild(el('h3', 'script-title', s.title));
    if (s.category) head.appendChild(badge(s.category, 'cat'));
    if (s.matched) head.appendChild(badge('推荐', 'hot'));
    item.appendChild(head);
    if (s.text) item.appendChild(el('p', 'script-text', s.text));
    const att = s.attachment;
    if (att && ATTACHMENT[att.type]) {
      item.appendChild(el('p', 'script-att att-' + att.type, ATTACHMENT[att.type] + (att.title ? '：' + att.title : '')));
    }
    const send = el('button', 'btn btn-send', '发送');
    send.type = 'button';
    send.addEventListener('click', () => sendScript(s, send, target));
    item.appendChild(send);
    return item;
  }

  function attachmentMessage(att, title) {
    if (!att) return null;
    const img = att.imgUrl || att.img_url || att.image_url || att.pic_url || '';
    if (att.type === 'link') {
      return { msgtype: 'news', news: { link: att.link || att.url || '', title: att.title || title,
        desc: att.desc || att.description || '', imgUrl: img } };
    }
    if (att.type === 'image') return null;  // needs a temporary media id first: imageMessage()
    if (att.type === 'miniprogram') {
      return { msgtype: 'miniprogram', miniprogram: { appid: att.appid || '', title: att.title || title,
        imgUrl: img, page: att.page || '' } };
    }
    return null;
  }

  /** The image as WeCom temporary media (the server uploads it when its last media id is too old). */
  async function imageMessage(s) {
    const res = await api(cfg.api.scripts + '/' + encodeURIComponent(s.id) + '/media', {});
    return { msgtype: 'image', image: { mediaid: res.media_id } };
  }

  async function sendScript(s, button, target) {
    if (button.disabled) return;
    button.disabled = true;
    button.textContent = '发送中…';
    try {
      const messages = [];
      if (s.text) messages.push({ msgtype: 'text', text: { content: s.text } });
      const extra = s.attachment && s.attachment.type === 'image'
        ? await imageMessage(s) : attachmentMessage(s.attachment, s.title);
      if (extra) messages.push(extra);
      if (!messages.length) throw new ApiError(0, '这条话术没有可发送的内容。');
      await ensureSdk();
      for (const message of messages) await call('sendChatMessage', message);
      button.textContent = '已发送';
      button.classList.add('done');
      api(cfg.api.scripts + '/' + encodeURIComponent(s.id) + '/sent', target).catch(() => {});
    } catch (err) {
      button.textContent = '发送';
      toast(err.message || '发送失败', 'error');
    } finally {
      button.disabled = false;
      setTimeout(() => { button.textContent = '发送'; button.classList.remove('done'); }, 2500);
    }
  }

  // ------------------------------------------------------------------ notes

  function notesCard(externalUserid, initial) {
    const section = card('跟进备注', el('span', 'muted', ''));
    section.id = 'notes';
    const count = section.querySelector('.card-head .muted');
    const form = el('form', 'note-form');
    const input = el('textarea', 'note-input');
    input.name = 'body';
    input.rows = 2;
    input.maxLength = 1000;
    input.placeholder = '记录客户需求、偏好或约定，团队可见';
    const save = el('button', 'btn btn-note', '添加备注');
    save.type = 'submit';
    const error = el('p', 'inline-error');
    error.hidden = true;
    const list = el('ul', 'notes');
    append(form, input, save);
    append(section, form, error, list);
    const base = cfg.api.contact + encodeURIComponent(externalUserid) + '/notes';

    function render(notes) {
      count.textContent = notes.length ? notes.length + ' 条' : '';
      list.replaceChildren();
      if (!notes.length) list.appendChild(el('li', 'muted empty', '还没有备注'));
      for (const n of notes) {
        const row = el('li', 'note');
        row.dataset.noteId = String(n.id);
        row.appendChild(el('p', 'note-body', n.body));
        const foot = el('p', 'note-foot', (n.author || n.author_userid) + ' · ' + day(n.created_at));
        if (n.mine) {
          const del = el('button', 'link-btn note-del', '删除');
          del.type = 'button';
          del.addEventListener('click', () => withdraw(n.id, del));
          foot.appendChild(del);
        }
        row.appendChild(foot);
        list.appendChild(row);
      }
    }

    function fail(err) {
      error.textContent = err.message || '操作失败，请稍后重试。';
      error.hidden = false;
    }

    async function withdraw(id, button) {
      button.disabled = true;
      error.hidden = true;
      try {
        render((await api(base + '/' + encodeURIComponent(id), undefined, 'DELETE')).notes);
        toast('已删除备注');
      } catch (err) {
        button.disabled = false;
        fail(err);
      }
    }

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) { fail(new ApiError(400, '备注内容不能为空。')); return; }
      save.disabled = true;
      error.hidden = true;
      try {
        render((await api(base, { body: text })).notes);
        input.value = '';
        toast('已添加备注');
      } catch (err) {
        fail(err);
      } finally {
        save.disabled = false;
      }
    });
    render(initial);
    return section;
  }

  // ------------------------------------------------------------------ orders and guides

  function ordersCard(orders, total) {
    const section = card('最近订单', el('span', 'muted', '共 ' + total + ' 单'));
    section.id = 'orders';
    if (!orders.length) {
      section.appendChild(el('p', 'muted empty', '暂无订单'));
      return section;
    }
    const list = el('ul', 'orders');
    for (const o of orders) {
      const row = el('li', 'order' + (o.status === 'refunded' || o.status === 'cancelled' ? ' order-void' : ''));
      const head = el('div', 'order-head');
      append(head, channelBadge(o.channel), el('span', 'order-date', day(o.ordered_at)),
        el('span', 'order-status st-' + o.status, ORDER_STATUS[o.status] || o.status), el('strong', 'order-amount', money(o.paid)));
      row.appendChild(head);
      const names = (o.items || []).map((i) => i.name + (i.quantity > 1 ? ' ×' + i.quantity : ''));
      if (names.length) row.appendChild(el('p', 'order-items', names.join('、')));
      const foot = [];
      if (o.store) foot.push(o.store);
      if (Number(o.refunded) > 0) foot.push('退款 ' + money(o.refunded));
      if (foot.length) row.appendChild(el('p', 'order-foot', foot.join(' · ')));
      list.appendChild(row);
    }
    section.appendChild(list);
    return section;
  }

  function guidesCard(guides, me) {
    const section = card('跟进导购', el('span', 'muted', guides.length + ' 人'));
    section.id = 'guides';
    const list = el('ul', 'people');
    for (const g of guides) {
      const row = el('li', 'person');
      const who = el('div', 'person-who');
      const name = el('p', 'person-name', g.name || g.userid);
      if (g.userid === me) name.appendChild(badge('我', 'me'));
      append(who, name, el('p', 'person-sub', [g.store, g.added_at ? '添加于 ' + day(g.added_at) : ''].filter(Boolean).join(' · ')));
      append(row, avatar(g.name, '', 'avatar-sm'), who,
        badge(FOLLOW_STATUS[g.status] || g.status, 'follow f-' + g.status));
      list.appendChild(row);
    }
    if (!guides.length) section.appendChild(el('p', 'muted empty', '暂无跟进导购'));
    section.appendChild(list);
    return section;
  }

  // ------------------------------------------------------------------ the group

  function renderGroup(g) {
    view.replaceChildren();
    const hero = el('section', 'card hero');
    const top = el('div', 'hero-top');
    const who = el('div', 'hero-who');
    const nameRow = append(el('div', 'hero-name-row'), el('h1', 'hero-name', g.name || '未命名客户群'));
    if (g.status === 'dismissed') nameRow.appendChild(badge('已解散', 'stage stage-lost'));
    who.appendChild(nameRow);
    const owner = g.owner || {};
    who.appendChild(el('p', 'hero-remark', '群主：' + (owner.name || owner.userid || '未知') + (owner.store ? ' · ' + owner.store : '')));
    append(top, el('div', 'avatar avatar-lg avatar-group', '群'), who);
    hero.appendChild(top);
    if (g.notice) hero.appendChild(el('p', 'notice', '群公告：' + g.notice));
    view.appendChild(hero);

    const stats = el('section', 'stats stats-4');
    for (const [label, value] of [['群成员', g.member_count], ['客户', g.customer_count], ['已识别', g.known_customer_count], ['员工', g.staff_count]]) {
      append(stats, append(el('div', 'stat'), el('strong', 'stat-value', String(value || 0)), el('span', 'stat-label', label)));
    }
    const rate = g.customer_count ? Math.round((g.known_customer_count / g.customer_count) * 100) : 0;
    const bar = el('div', 'meter');
    const fill = el('span', 'meter-fill');
    fill.style.width = rate + '%';
    bar.appendChild(fill);
    append(stats, el('p', 'stats-foot', '客户识别率 ' + rate + '%（已关联到客户档案）'), bar);
    view.appendChild(stats);

    const joins = card('最近入群', el('span', 'muted', '最近 ' + (g.recent_joins || []).length + ' 人'));
    joins.id = 'recent-joins';
    const list = el('ul', 'people');
    for (const m of g.recent_joins || []) {
      const row = el('li', 'person');
      const who2 = el('div', 'person-who');
      append(who2, el('p', 'person-name', m.name || m.userid),
        el('p', 'person-sub', m.join_time ? day(m.join_time) + ' 入群' : '入群时间未知'));
      const kind = m.type === 'staff' ? badge('员工', 'follow f-staff')
        : badge(m.known ? '已识别客户' : '未识别', 'follow ' + (m.known ? 'f-active' : 'f-unknown'));
      append(row, avatar(m.name, '', 'avatar-sm'), who2, kind);
      list.appendChild(row);
    }
    if (!(g.recent_joins || []).length) joins.appendChild(el('p', 'muted empty', '暂无成员'));
    joins.appendChild(list);
    append(view, scriptsCard(cfg.api.scripts, { chat_id: g.chat_id }), joins);
  }

  // ------------------------------------------------------------------ tabs: 客户 | 分享 | 业绩

  const TABS = ['customer', 'share', 'results'];
  const panels = {
    customer: document.getElementById('app'),
    share: document.getElementById('share-panel'),
    results: document.getElementById('results-panel'),
  };
  const tabButtons = Array.from(document.querySelectorAll('#tabs .tab'));
  let currentTab = 'customer';

  /** Show one tab's panel; the share and results panels are built the first time they are opened. */
  function selectTab(name, focus) {
    currentTab = TABS.includes(name) ? name : 'customer';
    for (const button of tabButtons) {
      const on = button.dataset.tab === currentTab;
      button.classList.toggle('on', on);
      button.setAttribute('aria-selected', on ? 'true' : 'false');
      button.tabIndex = on ? 0 : -1;
      if (on && focus) button.focus();
    }
    for (const tab of TABS) panels[tab].hidden = tab !== currentTab;
    document.body.dataset.tab = currentTab;
    // The hash keeps the tab across a reload; JS-SDK signatures never include it (PROTOCOL.md §5.2).
    try {
      window.history.replaceState(null, '', currentTab === 'customer' ? pageUrl() : '#' + currentTab);
    } catch (e) { /* some webviews refuse replaceState: the tab still switches */ }
    if (currentTab === 'share') openShare();
    if (currentTab === 'results') openResults();
    window.scrollTo(0, 0);
  }

  for (const button of tabButtons) button.addEventListener('click', () => selectTab(button.dataset.tab));
  document.getElementById('tabs').addEventListener('keydown', (event) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    event.preventDefault();
    selectTab(TABS[(TABS.indexOf(currentTab) + step + TABS.length) % TABS.length], true);
  });

  // ------------------------------------------------------------------ shared bits of the share and results views

  const shareApi = cfg.api.share || cfg.signin + 'api/share/';
  const commissionApi = cfg.api.commission || cfg.signin + 'api/commission/';
  const SHARE_CHANNELS = [['private', '私聊'], ['group', '群'], ['moments', '朋友圈']];
  const KIND_NAMES = { product: '商品', campaign: '活动', article: '文章', miniprogram: '小程序' };
  const KIND_FILTERS = [['', '全部']].concat(Object.entries(KIND_NAMES));
  const RATE_SOURCE = { base: '基础', category: '品类', tier: '阶梯' };
  const PERIODS = [['day', '今日'], ['week', '本周'], ['month', '本月']];

  /** A loading (no kind), empty or error block in the style of #status, for a panel or a card. */
  function statusBlock(text, hint, kind, action, actionText) {
    const box = el('section', 'status status-inline' + (kind ? ' status-' + kind : ''));
    if (!kind) {
      const spin = el('span', 'spinner');
      spin.setAttribute('aria-hidden', 'true');
      box.appendChild(spin);
    }
    box.appendChild(el('p', 'status-text', text));
    if (hint) box.appendChild(el('p', 'status-hint', hint));
    if (action) {
      const button = el('button', 'btn status-action', actionText || '重试');
      button.type = 'button';
      button.addEventListener('click', action);
      box.appendChild(button);
    }
    return box;
  }

  /** An API error as a status block: 重新登录 on an expired session, otherwise 重试. */
  function errorBlock(err, retry) {
    const signin = err.status === 401;
    return statusBlock(err.message || '出错了，请稍后重试。', err.hint || '', 'error',
      signin ? () => { window.location.href = cfg.signin; } : retry, signin ? '重新登录' : '重试');
  }

  /** Fen as ¥x.xx (exact: integer arithmetic, thousands grouped). */
  function fen(cents) {
    const n = Math.round(Number(cents) || 0);
    const abs = Math.abs(n);
    return (n < 0 ? '-' : '') + '¥' + Math.floor(abs / 100).toLocaleString('zh-CN') + '.' + String(abs % 100).padStart(2, '0');
  }

  function dateTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const pad = (n) => String(n).padStart(2, '0');
    return day(iso) + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes());
  }

  /** A segmented control; ``onPick(value)`` runs when another option is tapped. */
  function segmented(options, value, onPick, label) {
    const seg = el('div', 'seg');
    seg.setAttribute('role', 'group');
    if (label) seg.setAttribute('aria-label', label);
    for (const [key, text] of options) {
      const button = el('button', 'seg-btn' + (key === value ? ' on' : ''), text);
      button.type = 'button';
      button.dataset.value = key;
      button.setAttribute('aria-pressed', key === value ? 'true' : 'false');
      button.addEventListener('click', () => {
        if (button.classList.contains('on')) return;
        for (const b of seg.children) {
          b.classList.toggle('on', b === button);
          b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
        }
        onPick(key);
      });
      seg.appendChild(button);
    }
    return seg;
  }

  function setBusy(button, text) {
    button.dataset.label = button.dataset.label || button.textContent;
    button.classList.add('busy');
    button.disabled = true;
    button.textContent = text;
  }

  /** Back to the button's own label; ``doneText`` shows for a moment first. */
  function clearBusy(button, doneText) {
    button.classList.remove('busy');
    button.disabled = false;
    if (!doneText) {
      button.textContent = button.dataset.label;
      refreshSendButtons();
      return;
    }
    button.textContent = doneText;
    button.classList.add('done');
    setTimeout(() => {
      if (button.classList.contains('busy')) return;
      button.textContent = button.dataset.label;
      button.classList.remove('done');
      refreshSendButtons();
    }, 2500);
    refreshSendButtons();
  }

  // ------------------------------------------------------------------ the chat we are in (for sending)

  /** Record what the JS-SDK said about the current chat and update every send button. */
  function setChat(next) {
    chat = Object.assign({ entry: null, pending: false, userId: '', chatId: '', name: '' }, next);
    document.getElementById('tab-customer').textContent = chat.entry === 'group_chat_tools' ? '客户群' : '客户';
    refreshSendButtons();
  }

  /** Whether sendChatMessage can work here, and what to tell the guide either way. */
  function sendState() {
    if (chat.pending) return { ok: false, hint: '正在读取当前聊天……' };
    const inChat = SEND_ENTRIES.includes(chat.entry) && sdk() !== null
      && (chat.entry !== 'single_chat_tools' || chat.userId) && (chat.entry !== 'group_chat_tools' || chat.chatId);
    if (!inChat) {
      return { ok: false, hint: '当前不在与客户的聊天中，无法直接发送。请从单聊或客户群的聊天工具栏打开；也可以复制链接或保存海报后转发。' };
    }
    const where = chat.entry === 'group_chat_tools' ? '客户群' : '客户';
    return { ok: true, hint: chat.name ? '将发送给' + where + '「' + chat.name + '」' : '将发送到当前聊天' };
  }

  /** The channel a new link defaults to: where the guide is sending from. */
  function defaultChannel() {
    if (chat.entry === 'group_chat_tools') return 'group';
    if (SEND_ENTRIES.includes(chat.entry)) return 'private';
    return 'moments';
  }

  function refreshSendButtons() {
    const state = sendState();
    for (const hint of document.querySelectorAll('.send-hint')) {
      hint.textContent = state.hint;
      hint.classList.toggle('send-hint-off', !state.ok);
    }
    for (const button of document.querySelectorAll('.js-send')) {
      if (button.classList.contains('busy')) continue;
      button.disabled = !state.ok;
      button.title = state.ok ? '' : state.hint;
    }
    if (chat.pending) return;  // keep the channels until we know which chat this is
    for (const select of document.querySelectorAll('.share-channel:not([data-touched])')) select.value = defaultChannel();
  }

  // ------------------------------------------------------------------ 分享: the content library

  const shareLinks = new Map();  // "content id:channel" -> the guide's link (a promise, so taps share one request)
  let shareBuilt = false;

  /** The guide's own short link to the item on the channel (the server keeps one per guide, item and channel).
   *  ``recipient``: the external_userid of the one-to-one chat it goes into, so the customer's click is known. */
  function linkFor(item, channel, recipient) {
    const key = item.id + ':' + channel + ':' + (recipient || '');
    if (!shareLinks.has(key)) {
      const body = { content_id: item.id, channel: channel };
      if (recipient) body.external_userid = recipient;
      const pending = api(shareApi + 'links', body);
      pending.catch(() => shareLinks.delete(key));
      shareLinks.set(key, pending);
    }
    return shareLinks.get(key);
  }

  function openShare() {
    if (shareBuilt) return;
    shareBuilt = true;
    const panel = panels.share;
    const tools = card('内容库', el('span', 'muted share-count', ''));
    tools.id = 'share-tools';
    const count = tools.querySelector('.share-count');
    const search = document.createElement('input');
    search.type = 'search';
    search.className = 'search';
    search.placeholder = '搜索商品、活动或文章标题';
    search.setAttribute('aria-label', '搜索可分享的内容');
    let kind = '';
    const kinds = segmented(KIND_FILTERS, '', (value) => { kind = value; load(); }, '内容类型');
    kinds.classList.add('kind-filter');
    const hint = el('p', 'send-hint');
    append(tools, search, kinds, hint);
    const list = el('section', 'card share-list');
    list.id = 'share-list';
    list.setAttribute('aria-live', 'polite');
    append(panel, tools, list);
    let seq = 0;
    let timer = 0;

    async function load() {
      const mine = ++seq;
      const q = search.value.trim();
      list.replaceChildren(statusBlock('正在加载内容库……'));
      list.setAttribute('aria-busy', 'true');
      try {
        const data = await api(shareApi + 'content?q=' + encodeURIComponent(q) + '&kind=' + encodeURIComponent(kind));
        if (mine !== seq) return;
        const items = (data && data.content) || [];
        list.replaceChildren();
        count.textContent = items.length ? items.length + ' 条' : '';
        if (!items.length) {
          list.appendChild(q || kind
            ? statusBlock('没有匹配的内容', q ? '换个关键词试试，如商品名或活动名。' : '这一类暂时没有可分享的内容。', 'empty')
            : statusBlock('暂无可分享的内容', '总部在管理后台的内容库添加商品、活动或文章后，会出现在这里。', 'empty'));
        }
        for (const item of items) list.appendChild(shareItem(item));
        refreshSendButtons();
      } catch (err) {
        if (mine !== seq) return;
        count.textContent = '';
        list.replaceChildren(errorBlock(err, load));
      } finally {
        if (mine === seq) list.removeAttribute('aria-busy');
      }
    }

    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(load, 250);
    });
    load();
  }

  function cover(item) {
    const box = el('div', 'share-cover kind-' + item.kind, (KIND_NAMES[item.kind] || '图').slice(0, 1));
    box.setAttribute('aria-hidden', 'true');
    return withPicture(box, item.cover_url);
  }

  function shareItem(item) {
    const row = el('article', 'share-item');
    row.dataset.contentId = String(item.id);
    const top = el('div', 'share-top');
    const info = el('div', 'share-info');
    info.appendChild(el('h3', 'share-title', item.title));
    const meta = el('p', 'share-meta');
    meta.appendChild(badge(item.kind_name || KIND_NAMES[item.kind] || item.kind, 'kind kind-' + item.kind));
    if (item.category) meta.appendChild(el('span', 'muted', item.category));
    info.appendChild(meta);
    append(top, cover(item), info);

    const actions = el('div', 'share-actions');
    const channel = el('select', 'share-channel');
    channel.setAttribute('aria-label', '分享渠道');
    for (const [value, text] of SHARE_CHANNELS) channel.appendChild(new Option(text, value));
    channel.value = defaultChannel();
    const send = el('button', 'btn btn-sm js-send share-send', '发送到聊天');
    send.type = 'button';
    const copy = el('button', 'btn btn-sm btn-ghost share-copy', '复制链接');
    copy.type = 'button';
    const poster = el('button', 'btn btn-sm btn-ghost share-poster', '海报');
    poster.type = 'button';
    append(actions, channel, send, copy, poster);

    const linkBox = document.createElement('input');
    linkBox.className = 'share-link';
    linkBox.readOnly = true;
    linkBox.hidden = true;
    linkBox.setAttribute('aria-label', '我的专属链接');
    linkBox.addEventListener('focus', () => linkBox.select());

    channel.addEventListener('change', () => {
      channel.dataset.touched = '1';  // the guide's pick wins over the chat's default from now on
      linkBox.hidden = true;
    });
    send.addEventListener('click', () => shareToChat(item, channel.value, send));
    copy.addEventListener('click', () => copyLink(item, channel.value, copy, linkBox));
    poster.addEventListener('click', () => openPoster(item, channel.value));
    append(row, top, actions, linkBox);
    return row;
  }

  /** A mini-program page with the share code in its query; WeCom wants the path to end in .html (§5.5). */
  function miniprogramPage(page, code) {
    const at = page.indexOf('?');
    let path = at < 0 ? page : page.slice(0, at);
    const query = at < 0 ? '' : page.slice(at + 1);
    if (!/\.html$/.test(path)) path += '.html';
    const params = query.split('&').filter((p) => {
      if (!p) return false;
      try { return decodeURIComponent(p.split('=')[0]) !== 'scrm_share'; } catch (e) { return true; }
    });
    params.push('scrm_share=' + encodeURIComponent(code));
    return path + '?' + params.join('&');
  }

  /** The sendChatMessage payload for an item: a mini-program card, or a link card to the guide's short link. */
  function shareMessage(item, link) {
    const img = /^https?:\/\//.test(item.cover_url || '') ? item.cover_url : '';
    if (item.kind === 'miniprogram' && item.miniprogram_appid && item.miniprogram_page) {
      return { msgtype: 'miniprogram', miniprogram: { appid: item.miniprogram_appid, title: item.title, imgUrl: img,
        page: miniprogramPage(item.miniprogram_page, link.code) } };
    }
    const desc = (item.category ? item.category + ' · ' : '') + (item.kind === 'product' ? '点击查看商品详情' : '点击查看详情');
    return { msgtype: 'news', news: { link: link.url, title: item.title, desc: desc, imgUrl: img } };
  }

  async function shareToChat(item, channel, button) {
    const state = sendState();
    if (!state.ok) { toast(state.hint, 'error'); return; }
    if (button.classList.contains('busy')) return;
    setBusy(button, '发送中…');
    try {
      const recipient = chat.entry !== 'group_chat_tools' && channel === 'private' ? chat.userId : '';
      const link = await linkFor(item, channel, recipient);
      await ensureSdk();
      await call('sendChatMessage', shareMessage(item, link));
      clearBusy(button, '已发送');
    } catch (err) {
      clearBusy(button);
      toast(err.message || '发送失败', 'error');
    }
  }

  async function writeClipboard(text) {
    if (!navigator.clipboard || !window.isSecureContext) return false;
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      return false;  // no permission, or the webview has no clipboard: the input below is the fallback
    }
  }

  async function copyLink(item, channel, button, box) {
    if (button.classList.contains('busy')) return;
    setBusy(button, '获取中…');
    try {
      const link = await linkFor(item, channel);
      box.value = link.url;
      box.hidden = false;
      let copied = await writeClipboard(link.url);
      if (!copied) {
        box.focus();
        box.setSelectionRange(0, box.value.length);
        try { copied = document.execCommand('copy'); } catch (e) { copied = false; }
      }
      clearBusy(button, copied ? '已复制' : '');
      toast(copied ? '已复制链接，可粘贴到朋友圈或聊天' : '请长按上方已选中的链接，手动复制');
    } catch (err) {
      clearBusy(button);
      toast(err.message || '获取链接失败', 'error');
    }
  }

  // ------------------------------------------------------------------ 海报: the poster overlay

  let closeOverlay = null;

  function openPoster(item, channel) {
    if (closeOverlay) closeOverlay();
    const base = shareApi + 'content/' + encodeURIComponent(item.id) + '/poster';
    // 链接码: the QR code is the guide's short link; 加我码: their 「联系我」 code, scanning adds them as a contact.
    let kind = 'link';
    let url = '';
    const TIPS = {
      link: '长按图片保存到相册，或发送到当前聊天；二维码是您的专属链接。',
      addme: '客户扫码即可添加您为企业微信好友，新客户计入您的业绩。',
    };
    const overlay = el('div', 'overlay');
    overlay.id = 'poster-overlay';
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-modal', 'true');
    overlay.setAttribute('aria-label', '专属海报：' + item.title);
    const box = el('div', 'overlay-box');
    const close = el('button', 'overlay-close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', '关闭');
    const head = append(el('div', 'overlay-head'), el('h2', 'overlay-title', '专属海报'), close);
    const frame = el('div', 'poster-frame');
    const spin = el('span', 'spinner');
    spin.setAttribute('aria-hidden', 'true');
    const img = document.createElement('img');
    img.className = 'poster-img';
    img.alt = item.title + ' 的分享海报';
    const error = el('p', 'inline-error');
    error.hidden = true;
    append(frame, spin, img);
    const tip = el('p', 'poster-hint', TIPS.link);
    const kinds = segmented([['link', '链接码'], ['addme', '加我码']], kind, show, '二维码类型');
    kinds.classList.add('poster-kinds');
    const hint = el('p', 'send-hint');
    const send = el('button', 'btn js-send poster-send', '发送到聊天');
    send.type = 'button';
    const save = el('a', 'btn btn-ghost poster-save', '保存图片');
    save.download = '海报-' + item.title + '.png';
    const actions = append(el('div', 'overlay-actions'), send, save);
    append(box, head, kinds, frame, error, tip, actions, hint);

    function show(value) {
      kind = value;
      url = base + '?channel=' + encodeURIComponent(channel) + (kind === 'addme' ? '&kind=addme' : '');
      frame.classList.remove('loaded', 'failed');
      error.hidden = true;
      send.classList.remove('busy');
      save.hidden = false;
      save.href = url;
      tip.textContent = TIPS[kind];
      img.src = url;
      refreshSendButtons();
    }
    overlay.appendChild(box);

    img.addEventListener('load', () => frame.classList.add('loaded'));
    img.addEventListener('error', async () => {
      frame.classList.add('failed');
      send.classList.add('busy');  // keeps refreshSendButtons from enabling it: there is nothing to send
      send.disabled = true;
      save.hidden = true;
      // An <img> cannot read the error body; ask again for the message (e.g. no Chinese font on the server).
      let message = '海报加载失败，请稍后重试。';
      try { await api(url); } catch (err) { message = err.message || message; }
      error.textContent = message;
      error.hidden = false;
    });
    send.addEventListener('click', () => sendPoster(item, channel, kind, send));

    function onKey(event) { if (event.key === 'Escape') closeOverlay(); }
    closeOverlay = () => {
      overlay.remove();
      document.body.classList.remove('overlay-open');
      document.removeEventListener('keydown', onKey);
      closeOverlay = null;
    };
    close.addEventListener('click', () => closeOverlay());
    overlay.addEventListener('click', (event) => { if (event.target === overlay) closeOverlay(); });
    document.addEventListener('keydown', onKey);
    document.body.appendChild(overlay);
    document.body.classList.add('overlay-open');
    show(kind);
    close.focus();
  }

  /** The poster as WeCom temporary media (uploaded by the server), then sent as an image. */
  async function sendPoster(item, channel, kind, button) {
    const state = sendState();
    if (!state.ok) { toast(state.hint, 'error'); return; }
    if (button.classList.contains('busy')) return;
    setBusy(button, '发送中…');
    try {
      const res = await api(shareApi + 'content/' + encodeURIComponent(item.id) + '/poster/media', { channel: channel, kind: kind });
      await ensureSdk();
      await call('sendChatMessage', { msgtype: 'image', image: { mediaid: res.media_id } });
      clearBusy(button, '已发送');
    } catch (err) {
      clearBusy(button);
      toast(err.message || '发送失败', 'error');
    }
  }

  // ------------------------------------------------------------------ 业绩: my results and commission

  let resultsView = null;

  function openResults() {
    if (!resultsView) resultsView = buildResults();
    resultsView.refresh();  // every time: clicks and orders keep coming in
  }

  function buildResults() {
    const panel = panels.results;
    let period = 'week';
    let loaded = false;
    let seq = 0;
    const perf = card('我的分享业绩', segmented(PERIODS, period, (value) => { period = value; loadResults(); }, '统计周期'));
    perf.id = 'my-results';
    const perfBody = el('div', 'results-body');
    perf.appendChild(perfBody);
    const commission = card('本月提成', el('span', 'muted commission-month', ''));
    commission.id = 'my-commission';
    const commissionBody = el('div', 'commission-body');
    commission.appendChild(commissionBody);
    append(panel, perf, commission);

    async function loadResults() {
      const mine = ++seq;
      if (!loaded) perfBody.replaceChildren(statusBlock('正在加载业绩……'));
      perf.setAttribute('aria-busy', 'true');
      try {
        const data = await api(shareApi + 'results?period=' + encodeURIComponent(period));
        if (mine !== seq) return;
        loaded = true;
        perfBody.replaceChildren(...resultsBody(data));
      } catch (err) {
        if (mine !== seq) return;
        loaded = false;
        perfBody.replaceChildren(errorBlock(err, loadResults));
      } finally {
        if (mine === seq) perf.removeAttribute('aria-busy');
      }
    }

    async function loadCommission() {
      if (!commissionBody.firstChild) commissionBody.replaceChildren(statusBlock('正在加载提成……'));
      try {
        const data = await api(commissionApi + 'me');
        const month = /^(\d{4})-(\d{2})$/.exec(data.month || '');
        commission.querySelector('.commission-month').textContent = month ? month[1] + '年' + Number(month[2]) + '月' : '';
        commissionBody.replaceChildren(...commissionContent(data));
      } catch (err) {
        commissionBody.replaceChildren(errorBlock(err, loadCommission));
      }
    }

    return { refresh() { loadResults(); loadCommission(); } };
  }

  /** An SVG chart from the server as a node: parsed as XML (never as HTML), anything active dropped. */
  function chartNode(text, label) {
    const doc = new DOMParser().parseFromString(String(text || ''), 'image/svg+xml');
    const root = doc.documentElement;
    if (!root || root.localName !== 'svg' || doc.getElementsByTagName('parsererror').length) {
      return el('p', 'muted empty', '图表暂时无法显示');
    }
    // sharing/charts.py escapes every label and emits no script; this is defence in depth.
    for (const node of Array.from(root.querySelectorAll('script, foreignObject, a, use, image, iframe'))) node.remove();
    for (const node of [root].concat(Array.from(root.querySelectorAll('*')))) {
      for (const attr of Array.from(node.attributes)) {
        if (/^on/i.test(attr.name) || /href$/i.test(attr.name)) node.removeAttribute(attr.name);
      }
    }
    const svg = document.importNode(root, true);
    svg.removeAttribute('width');  // the viewBox scales it to the card
    svg.removeAttribute('height');
    svg.setAttribute('class', 'chart');
    svg.setAttribute('aria-label', label);
    return svg;
  }

  function resultsBody(data) {
    const mine = data.mine || {};
    const stats = el('div', 'stats-grid');
    const items = [['点击', mine.clicks], ['访客', mine.visitors], ['新增好友', mine.new_contacts], ['成交订单', mine.orders],
      ['成交额', fen(mine.gmv_cents)], ['转化率', ((Number(mine.conversion) || 0) * 100).toFixed(1) + '%']];
    for (const [label, value] of items) {
      const cell = append(el('div', 'stat'), el('strong', 'stat-value', typeof value === 'number' ? value.toLocaleString('zh-CN') : String(value || 0)),
        el('span', 'stat-label', label));
      cell.dataset.stat = label;
      stats.appendChild(cell);
    }
    const period = data.period_name || '';
    const rank = el('p', 'results-rank', data.rank
      ? period + '本店排名：第 ' + data.rank + ' 名 / 共 ' + data.peers + ' 人'
      : period + '暂未上榜，分享内容带来点击和成交后即可上榜');
    const out = [stats, rank];
    if (!mine.clicks) {
      const go = el('button', 'link-btn', '去分享');
      go.type = 'button';
      go.addEventListener('click', () => selectTab('share'));
      out.push(append(el('p', 'results-empty muted', period + '还没有人点开您的分享。'), go));
    }
    const funnel = el('figure', 'chart-box');
    funnel.id = 'funnel';
    append(funnel, el('figcaption', 'chart-title', '转化漏斗 · ' + period), chartNode(data.funnel_svg, '我的转化漏斗'));
    const board = el('figure', 'chart-box');
    board.id = 'leaderboard';
    append(board, el('figcaption', 'chart-title', '本店排行 · 成交额'), chartNode(data.leaderboard_svg, '本店导购成交额排行'));
    out.push(funnel, board);
    return out;
  }

  function commissionContent(data) {
    const out = [];
    const hero = el('div', 'commission-hero');
    append(hero, el('span', 'commission-label', '预计提成'), el('strong', 'commission-total', fen(data.total_cents)));
    out.push(hero);
    const rules = data.rules || {};
    const rate = data.tier ? data.tier.rate : rules.base_rate || '—';
    const rateLabel = data.tier ? '阶梯费率 · 满' + fen(data.tier.min_gmv_cents) : '基础费率';
    const grid = el('div', 'stats-grid stats-grid-3');
    for (const [label, value, key] of [['提成订单', (data.order_count || 0) + ' 单', 'orders'], ['成交额', fen(data.gmv_cents), 'gmv'],
      [rateLabel, rate, 'tier']]) {
      const cell = append(el('div', 'stat'), el('strong', 'stat-value', value), el('span', 'stat-label', label));
      cell.dataset.stat = key;
      grid.appendChild(cell);
    }
    out.push(grid);
    const extras = [];
    if (data.bonus_cents) extras.push('订单奖励 ' + fen(data.bonus_cents));
    if (data.capped_cents) extras.push('封顶扣减 ' + fen(-data.capped_cents));
    extras.push(data.computed_at ? '结算于 ' + dateTime(data.computed_at) : '本月尚未结算');
    out.push(el('p', 'commission-foot', extras.join(' · ')));

    const lines = data.lines || [];
    if (!lines.length) {
      out.push(statusBlock('本月暂无提成记录', '分享带来的成交订单，会在总部结算提成后出现在这里。', 'empty'));
      return out;
    }
    // A statement has one line per order and category; the guide thinks in orders.
    const orders = new Map();
    for (const line of lines) {
      const key = String(line.order_id);
      if (!orders.has(key)) orders.set(key, { first: line, gmv: 0, amount: 0, parts: [] });
      const o = orders.get(key);
      o.gmv += Number(line.gmv_cents) || 0;
      o.amount += Number(line.amount_cents) || 0;
      o.parts.push((line.category || '商品') + ' ' + line.rate + (RATE_SOURCE[line.rate_source] ? '（' + RATE_SOURCE[line.rate_source] + '）' : ''));
    }
    const list = el('ul', 'orders commission-orders');
    const newestFirst = [...orders.values()].sort(
      (a, b) => String(b.first.ordered_at).localeCompare(String(a.first.ordered_at)));
    for (const o of newestFirst) {
      const row = el('li', 'order');
      row.dataset.orderId = String(o.first.order_id);
      const head = el('div', 'order-head');
      append(head, channelBadge(o.first.channel || 'other'), el('span', 'order-date', day(o.first.ordered_at)),
        el('strong', 'order-amount', fen(o.amount)));
      row.appendChild(head);
      row.appendChild(el('p', 'order-items', '成交 ' + fen(o.gmv) + ' · ' + o.parts.join('、')));
      if (o.first.channel_order_id) row.appendChild(el('p', 'order-foot', '订单号 ' + o.first.channel_order_id));
      // A busy month has dozens of orders: the latest few first, the rest one tap away, not a page-long scroll.
      if (list.children.length >= COMMISSION_LINES_SHOWN) row.hidden = true;
      list.appendChild(row);
    }
    out.push(el('h3', 'commission-list-title', '提成明细（' + orders.size + ' 单）'), list);
    if (orders.size > COMMISSION_LINES_SHOWN) {
      const more = el('button', 'btn btn-sm btn-ghost commission-more', '查看全部 ' + orders.size + ' 单');
      more.type = 'button';
      more.addEventListener('click', () => {
        for (const row of list.children) row.hidden = false;
        more.remove();
      });
      out.push(more);
    }
    return out;
  }

  window.addEventListener('sidebar:context', () => boot());
  if (window.location.hash.length > 1) selectTab(window.location.hash.slice(1));
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
