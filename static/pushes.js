// The admin page of scheduled group pushes (/admin/pushes): fetches the JSON API under /admin/api and renders
// it with textContent / createElement only (no markup is ever built from data).
(() => {
  'use strict';

  const API = '/admin/api';
  const body = document.body;
  const TZ = body.dataset.tz || 'Asia/Shanghai';
  const TEXT_MAX = Number(body.dataset.textMax || 4000);
  const CREATING_MS = 1000; // a run being created: follow its progress bar
  const POLLING_MS = 10000; // a run waiting for guides: results change only when the server polls WeCom
  const $ = (sel, root = document) => root.querySelector(sel);

  const PUSH_STATUS = { active: '启用中', paused: '已暂停', cancelled: '已取消', finished: '已结束' };
  const RUN_STATUS = {
    creating: '创建中', polling: '等待导购确认', finished: '已完成', failed: '失败', skipped: '已跳过',
    cancelled: '已取消',
  };
  const PHASES = {
    resolving: '正在计算受众…', planned: '已分配到导购，准备创建任务…', creating: '正在创建企业微信群发任务',
  };
  const TRIGGERS = { schedule: '定时', manual: '立即发送' };
  // Outcomes as the stacked bar groups them, in bar order.
  const BAR = [
    { key: 'sent', label: '已发送', outcomes: ['sent'] },
    { key: 'pending', label: '待确认', outcomes: ['pending'] },
    { key: 'not_friend', label: '非好友', outcomes: ['not_friend'] },
    { key: 'over_quota', label: '超出接收上限', outcomes: ['over_quota'] },
    { key: 'unconfirmed', label: '导购未确认', outcomes: ['unconfirmed'] },
    { key: 'failed', label: '失败', outcomes: ['failed', 'invalid'] },
    { key: 'skipped', label: '跳过', outcomes: ['no_guide', 'skipped_quota', 'capped'] },
  ];
  const OUTCOMES = {
    sent: '已发送', pending: '待确认', not_friend: '非好友（客户已删除导购）',
    over_quota: '超出接收上限（客户已收到过群发）', unconfirmed: '导购未在期限内确认', failed: '任务创建失败',
    invalid: '无效接收人', no_guide: '无导购可发送', skipped_quota: '超出品牌接收频次', capped: '超出每次上限',
  };
  const FIELD_LABELS = {
    name: '名称', audience: '受众', content: '内容', 'content.text': '内容', 'content.attachments': '附件',
    schedule: '时间', cap: '每次上限', timezone: '时区', status: '状态', scheduled_for: '计划时间',
  };

  const state = {
    pushes: [], runs: [], details: new Map(), dry: new Map(), errors: new Map(), openRun: null,
    timer: null, loading: null, again: false,
  };

  // -- helpers ----------------------------------------------------------------------------------

  /** An element with attributes/properties and children (strings become text nodes). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  const timeParts = new Intl.DateTimeFormat('zh-CN', {
    timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
    weekday: 'short', hourCycle: 'h23',
  });

  function parts(date) {
    const out = {};
    for (const p of timeParts.formatToParts(date)) out[p.type] = p.value;
    return out;
  }

  /** An ISO time as "2026-11-25 周三 10:00" in the brand's zone. */
  function when(iso) {
    if (!iso) return '—';
    const p = parts(new Date(iso));
    return `${p.year}-${p.month}-${p.day} ${p.weekday} ${p.hour}:${p.minute}`;
  }

  /** A value for <input type=datetime-local> an hour ahead, on the hour, in the brand's zone. */
  function nextHourLocal() {
    const p = parts(new Date(Date.now() + 2 * 3600 * 1000 - (Date.now() % 3600000)));
    return `${p.year}-${p.month}-${p.day}T${p.hour}:00`;
  }

  const num = (n) => (n === undefined || n === null ? '—' : Number(n).toLocaleString('zh-CN'));
  const sum = (obj, keys) => keys.reduce((total, k) => total + Number((obj || {})[k] || 0), 0);
  const isRunning = (run) => run.status === 'creating' || run.status === 'polling';

  async function api(method, path, data) {
    const options = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (data !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(data);
    }
    const response = await fetch(API + path, options);
    let json = null;
    try { json = await response.json(); } catch (_) { json = null; }
    if (!response.ok) {
      const message = response.status === 401 ? '登录已过期：请重新打开 /admin/login?token=…'
        : (json && json.error) || `请求失败（HTTP ${response.status}）`;
      const error = new Error(message);
      error.field = (json && json.field) || '';
      error.status = response.status;
      throw error;
    }
    return json;
  }

  function audienceText(audience) {
    const a = audience || {};
    const names = a.names || {};
    const named = (ids, map) => (ids || []).map((t) => ((map || {})[String(t)] ? `「${map[String(t)]}」` : '#' + t)).join('、');
    if (a.kind === 'tags') return `标签 ${named(a.tag_ids, names.tags)}（${a.match === 'all' ? '全部' : '任一'}）`;
    if (a.kind === 'segment') return names.segment ? `人群「${names.segment}」` : `人群 #${a.segment_id}`;
    if (a.kind === 'customers') return `指定客户 ${num((a.customer_ids || []).length)} 位`;
    if (a.kind === 'groups') {
      const bits = [];
      if ((a.owners || []).length) bits.push(`群主 ${a.owners.join('、')}`);
      if ((a.store_ids || []).length) bits.push(`门店 ${named(a.store_ids, names.stores)}`);
      if (a.name_contains) bits.push(`群名含「${a.name_contains}」`);
      return `客户群：${bits.join('；')}`;
    }
    return '—';
  }

  // -- the outcome bar --------------------------------------------------------------------------

  /** A stacked bar (SVG) of a run's outcomes with its legend; empty when nothing is counted yet. */
  function outcomeBar(outcomes, { legend = true } = {}) {
    const groups = BAR.map((g) => ({ ...g, n: sum(outcomes, g.outcomes) })).filter((g) => g.n > 0);
    const total = groups.reduce((t, g) => t + g.n, 0);
    const figure = el('figure', { class: 'outcome-bar' + (legend ? '' : ' compact') });
    if (!total) {
      figure.append(el('span', { class: 'muted', text: '暂无结果' }));
      return figure;
    }
    const chart = svg('svg', {
      class: 'bar', viewBox: '0 0 1000 20', preserveAspectRatio: 'none', role: 'img',
      'aria-label': groups.map((g) => `${g.label} ${g.n}`).join('，'),
    });
    let x = 0;
    for (const g of groups) {
      const width = (g.n / total) * 1000;
      const rect = svg('rect', {
        x: x.toFixed(2), y: 0, width: Math.max(width, 0.5).toFixed(2), height: 20, class: `seg seg-${g.key}`,
        'data-outcome': g.key, 'data-value': g.n,
      });
      const title = svg('title');
      title.textContent = `${g.label}：${g.n}` + (g.outcomes.length > 1
        ? `（${g.outcomes.filter((o) => outcomes[o]).map((o) => `${OUTCOMES[o]} ${outcomes[o]}`).join('，')}）` : '');
      rect.append(title);
      chart.append(rect);
      x += width;
    }
    figure.append(chart);
    if (legend) {
      figure.append(el('figcaption', { class: 'legend' }, groups.map((g) => el('span', { class: 'key', dataset: { outcome: g.key } },
        el('i', { class: `swatch seg-${g.key}` }), `${g.label} `, el('b', { text: num(g.n) })))));
    }
    return figure;
  }

  function stat(label, value, key, note) {
    return el('div', { class: 'stat', dataset: { stat: key } },
      el('span', { class: 'stat-value', text: value }), el('span', { class: 'stat-label', text: label }),
      note ? el('span', { class: 'stat-note', text: note }) : null);
  }

  function progressBar(done, total) {
    const pct = total ? Math.min(100, Math.round((done / total) * 100)) : 0;
    return el('div', {
      class: 'progress' + (total ? '' : ' indeterminate'), role: 'progressbar', 'aria-valuemin': 0,
      'aria-valuemax': total || 0, 'aria-valuenow': done || 0, 'aria-label': '任务创建进度',
    }, (() => { const fill = el('div', { class: 'fill' }); fill.style.width = `${pct}%`; return fill; })());
  }

  // -- pushes (即将发送) ------------------------------------------------------------------------

  function pushCard(push) {
    const card = el('article', { class: `push status-${push.status}`, dataset: { pushId: push.id, status: push.status } });
    card.append(el('header', {},
      el('h3', { class: 'push-name', text: push.name }),
      el('span', { class: `badge badge-${push.status}`, text: PUSH_STATUS[push.status] || push.status })));
    const meta = [push.schedule_text, audienceText(push.audience)];
    if (push.cap) meta.push(`每次最多 ${num(push.cap)} 位`);
    card.append(el('p', { class: 'meta', text: meta.join(' · ') }));
    const content = push.content || {};
    const attachments = content.attachments || [];
    card.append(el('p', { class: 'preview', text: content.text || '（仅附件）' },
      attachments.length ? el('span', { class: 'muted', text: ` ＋ ${attachments.length} 个附件` }) : null));

    if (push.status === 'active') {
      const list = el('ul', { class: 'upcoming' });
      for (const run of push.upcoming || []) {
        const item = el('li', { dataset: { at: run.at, cancelled: run.cancelled ? '1' : '0' } },
          el('span', { class: 'at', text: when(run.at) }));
        if (run.cancelled) item.append(el('span', { class: 'badge badge-cancelled', text: '已取消' }));
        else item.append(el('button', { type: 'button', class: 'link cancel-run', text: '取消本次',
          onclick: (e) => act(push, e.currentTarget, 'POST', `/pushes/${push.id}/cancel-run`, { scheduled_for: run.at },
            `取消「${push.name}」${when(run.at)} 这一次发送？`) }));
        list.append(item);
      }
      if (!list.children.length) list.append(el('li', { class: 'muted', text: '没有计划中的发送' }));
      card.append(el('div', { class: 'upcoming-head muted', text: '下次发送' }), list);
    }

    const actions = el('div', { class: 'push-actions' });
    if (push.status === 'active' || push.status === 'paused') {
      actions.append(el('button', { type: 'button', class: 'ghost dry-run', text: '试算', onclick: (e) => dryRun(push, e.currentTarget) }));
    }
    if (push.status === 'active') {
      actions.append(
        el('button', { type: 'button', class: 'run-now', text: '立即发送',
          onclick: (e) => runNow(push, e.currentTarget) }),
        el('button', { type: 'button', class: 'ghost pause', text: '暂停',
          onclick: (e) => act(push, e.currentTarget, 'POST', `/pushes/${push.id}/pause`) }));
    }
    if (push.status === 'paused') {
      actions.append(el('button', { type: 'button', class: 'resume', text: '恢复',
        onclick: (e) => act(push, e.currentTarget, 'POST', `/pushes/${push.id}/resume`) }));
    }
    if (push.status === 'active' || push.status === 'paused') {
      actions.append(el('button', { type: 'button', class: 'danger cancel-push', text: '取消群发',
        onclick: (e) => act(push, e.currentTarget, 'POST', `/pushes/${push.id}/cancel`, undefined,
          `取消群发「${push.name}」？之后的发送都不会再进行。`) }));
    }
    if (actions.children.length) card.append(actions);
    const error = state.errors.get(push.id);
    if (error) card.append(el('p', { class: 'push-error bad', role: 'alert', text: error }));
    const dry = state.dry.get(push.id);
    if (dry) card.append(dryPanel(dry));
    return card;
  }

  function dryPanel(dry) {
    const c = dry.counts || {};
    const panel = el('div', { class: 'dry' },
      el('h4', { text: `试算结果（${when(dry.at)}，不会发送）` }),
      el('button', { type: 'button', class: 'link dry-close', text: '收起',
        onclick: () => { state.dry.delete(dry.push_id); renderPushes(); } }),
      el('div', { class: 'stats' },
        stat('受众', num(c.audience), 'audience'), stat('将发送', num(c.targeted), 'targeted'),
        stat('无导购', num(c.no_guide), 'no_guide'), stat('超出接收频次', num(c.skipped_quota), 'skipped_quota'),
        stat('超出每次上限', num(c.capped), 'capped'), stat('任务', num(c.tasks), 'tasks')),
      el('p', { class: 'muted quota', text: `品牌接收频次：每位客户${dry.quota}（超出的客户本次跳过）；共 ${num(c.guides)} 位导购。` }));
    const rows = (dry.guides || []).map((g) => el('tr', { dataset: { userid: g.userid } },
      el('td', { class: 'guide-name', text: g.name || '—' }), el('td', { class: 'muted', text: g.userid }),
      el('td', { class: 'n', text: num(g.targeted) }), el('td', { class: 'n', text: num(g.tasks) })));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'empty', text: '按当前条件没有可发送的客户' })));
    panel.append(el('table', { class: 'split' },
      el('thead', {}, el('tr', {}, el('th', { text: '导购' }), el('th', { text: 'userid' }),
        el('th', { class: 'n', text: '客户' }), el('th', { class: 'n', text: '任务' }))),
      el('tbody', {}, rows)));
    return panel;
  }

  function renderPushes() {
    const live = state.pushes.filter((p) => p.status === 'active' || p.status === 'paused');
    const ended = state.pushes.filter((p) => !(p.status === 'active' || p.status === 'paused'));
    const list = $('#push-list');
    list.replaceChildren(...live.map(pushCard));
    if (!live.length) list.append(el('p', { class: 'empty', text: '没有计划中的群发：用右侧表单新建一个' }));
    const details = $('#ended-pushes');
    details.hidden = !ended.length;
    $('.n', details).textContent = String(ended.length);
    $('.push-list', details).replaceChildren(...ended.map(pushCard));
  }

  async function act(push, button, method, path, data, question) {
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    state.errors.delete(push.id);
    try {
      replacePush(await api(method, path, data));
      renderPushes();
      await refresh(); // a cancelled run or a changed push shows in the run lists too
      return;
    } catch (error) {
      state.errors.set(push.id, error.message);
    }
    renderPushes();
  }

  function replacePush(updated) {
    const index = state.pushes.findIndex((p) => p.id === updated.id);
    if (index >= 0) state.pushes[index] = updated;
    else state.pushes.unshift(updated);
  }

  async function dryRun(push, button) {
    button.disabled = true;
    button.textContent = '试算中…';
    state.errors.delete(push.id);
    try {
      state.dry.set(push.id, await api('POST', `/pushes/${push.id}/dry-run`));
    } catch (error) {
      state.errors.set(push.id, error.message);
    }
    renderPushes();
  }

  async function runNow(push, button) {
    if (!window.confirm(`立即为「${push.name}」创建群发任务？导购确认后即发给客户。`)) return;
    button.disabled = true;
    state.errors.delete(push.id);
    try {
      const run = await api('POST', `/pushes/${push.id}/run`);
      state.runs = [run, ...state.runs.filter((r) => r.id !== run.id)];
      state.details.set(run.id, run);
      renderRuns();
      follow();
    } catch (error) {
      state.errors.set(push.id, error.message);
    }
    renderPushes();
  }

  // -- runs (发送中 / 已完成 / 详情) --------------------------------------------------------------

  function runningCard(run) {
    const detail = state.details.get(run.id) || run;
    const card = el('article', { class: 'run', dataset: { runId: run.id, status: detail.status } },
      el('header', {},
        el('h3', {}, el('button', { type: 'button', class: 'link open-run', text: detail.push_name, onclick: () => openRun(run.id) })),
        el('span', { class: `badge badge-${detail.status}`, text: RUN_STATUS[detail.status] || detail.status })),
      el('p', { class: 'meta', text: `${TRIGGERS[detail.trigger] || detail.trigger} · 计划 ${when(detail.scheduled_for)}` }));
    const progress = detail.progress || { done: 0, total: 0 };
    if (detail.status === 'creating') {
      card.append(progressBar(progress.done, progress.total),
        el('p', { class: 'phase', text: `${PHASES[detail.phase] || '创建中…'}${progress.total ? `：${progress.done} / ${progress.total}` : ''}` }));
    } else {
      const tasks = detail.tasks || {};
      const counts = detail.counts || {};
      card.append(el('p', { class: 'phase waiting' },
        '等待导购确认 · ',
        el('span', { class: 'confirmed', text: `已确认 ${num(tasks.confirmed)} / ${num(tasks.created)} 个任务` }),
        ` · 目标客户 ${num(counts.targeted)} · 已发送 ${num((detail.outcomes || {}).sent || 0)}`,
        detail.deadline_at ? ` · 截止 ${when(detail.deadline_at)}` : ''));
    }
    if (detail.error) card.append(el('p', { class: 'bad', text: detail.error }));
    return card;
  }

  function finishedRow(run) {
    const counts = run.counts || {};
    const row = el('tr', { class: 'run-row', dataset: { runId: run.id, status: run.status } },
      el('td', {}, el('button', { type: 'button', class: 'link open-run', text: run.push_name, onclick: () => openRun(run.id) })),
      el('td', { text: when(run.scheduled_for) }),
      el('td', {}, el('span', { class: `badge badge-${run.status}`, text: RUN_STATUS[run.status] || run.status }),
        run.error ? el('div', { class: 'muted err', text: run.error }) : null),
      el('td', { class: 'n targeted', text: counts.targeted === undefined ? '—' : num(counts.targeted) }),
      el('td', { class: 'n sent', text: num((run.outcomes || {}).sent || 0) }),
      el('td', { class: 'bar-cell' }, outcomeBar(run.outcomes || {}, { legend: false })));
    return row;
  }

  function renderRuns() {
    const running = state.runs.filter(isRunning);
    const list = $('#running-list');
    list.replaceChildren(...running.map(runningCard));
    if (!running.length) list.append(el('p', { class: 'empty', text: '没有正在进行的群发' }));
    const done = state.runs.filter((r) => !isRunning(r));
    const table = $('#finished-list');
    table.replaceChildren(...done.map(finishedRow));
    if (!done.length) table.append(el('tr', {}, el('td', { colspan: 6, class: 'empty', text: '还没有完成的群发' })));
    renderDetail();
  }

  function renderDetail() {
    const section = $('#run-detail');
    const detail = state.openRun && state.details.get(state.openRun);
    section.hidden = !detail;
    if (!detail) return;
    section.dataset.runId = detail.id;
    section.dataset.status = detail.status;
    $('#run-detail-h').textContent = `群发详情 · ${detail.push_name}`;
    const counts = detail.counts || {};
    const outcomes = detail.outcomes || {};
    const tasks = detail.tasks || {};
    const meta = [`${RUN_STATUS[detail.status] || detail.status}`, TRIGGERS[detail.trigger] || detail.trigger,
      `计划 ${when(detail.scheduled_for)}`];
    if (detail.created_at) meta.push(`任务创建于 ${when(detail.created_at)}`);
    if (detail.deadline_at && detail.status === 'polling') meta.push(`确认截止 ${when(detail.deadline_at)}`);
    if (detail.finished_at) meta.push(`结束于 ${when(detail.finished_at)}`);
    const failedCustomers = sum(outcomes, ['not_friend', 'over_quota', 'unconfirmed', 'failed', 'invalid']);
    const nodes = [
      el('p', { class: 'meta', text: meta.join(' · ') }),
      detail.error ? el('p', { class: 'bad', text: detail.error }) : null,
    ];
    if (detail.status === 'creating') {
      const p = detail.progress || {};
      nodes.push(progressBar(p.done, p.total), el('p', { class: 'phase', text: `${PHASES[detail.phase] || '创建中…'}${p.total ? `：${p.done} / ${p.total}` : ''}` }));
    }
    nodes.push(el('div', { class: 'stats' },
      stat('目标客户', num(counts.targeted), 'targeted', counts.audience !== undefined ? `受众 ${num(counts.audience)}` : null),
      stat('任务创建', `${num(tasks.created)} / ${num(tasks.planned)}`, 'created', tasks.failed ? `失败 ${num(tasks.failed)}` : null),
      stat('已确认', num(tasks.confirmed), 'confirmed', '个任务'),
      stat('已发送', num(outcomes.sent || 0), 'sent', '位客户'),
      stat('未送达', num(failedCustomers), 'failed', '位客户')));
    nodes.push(outcomeBar(outcomes));

    const reasons = Object.keys(OUTCOMES).filter((o) => o !== 'sent' && o !== 'pending' && outcomes[o]);
    const failures = detail.failures || [];
    if (reasons.length || failures.length) {
      nodes.push(el('h4', { text: '未送达与跳过的原因' }), el('ul', { class: 'reasons' },
        reasons.map((o) => el('li', { dataset: { outcome: o } }, `${OUTCOMES[o]}：`, el('b', { text: num(outcomes[o]) }), ' 位')),
        failures.map((f) => el('li', { class: 'failure', dataset: { errorCode: f.error_code ?? '' } },
          `任务创建失败 · 错误码 ${f.error_code ?? '—'}：${f.error || '未知错误'}（${num(f.tasks)} 个任务）`))));
    }

    const guides = detail.guides || [];
    const rows = guides.map((g) => {
      const own = g.tasks || [];
      const taskText = own.map((t) => t.status === 'failed' ? `失败 ${t.error_code ?? ''}`.trim()
        : t.confirmed ? '已确认' : t.status === 'created' ? '待确认' : t.status === 'final' ? '已结束'
          : t.error ? `等待重试（${t.error}）` : '创建中').join('、');
      return el('tr', { dataset: { userid: g.userid } },
        el('td', {}, el('span', { class: 'guide-name', text: g.name || g.userid }), ' ', el('span', { class: 'muted', text: g.userid })),
        el('td', { text: own.length ? `${own.length} 个（${taskText}）` : '—' }),
        el('td', { class: 'n', text: num(g.outcomes.sent || 0) }),
        el('td', { class: 'bar-cell' }, outcomeBar(g.outcomes || {}, { legend: false })),
        el('td', { class: 'muted', text: Object.entries(g.outcomes || {}).map(([o, n]) => `${OUTCOMES[o] || o} ${n}`).join('，') }));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'empty', text: '没有导购任务' })));
    nodes.push(el('h4', { text: '各导购' }), el('table', { class: 'per-guide' },
      el('thead', {}, el('tr', {}, el('th', { text: '导购' }), el('th', { text: '任务' }), el('th', { class: 'n', text: '已发送' }),
        el('th', { text: '结果' }), el('th', { text: '明细' }))),
      el('tbody', {}, rows)));
    $('.body', section).replaceChildren(...nodes.filter(Boolean));
  }

  async function openRun(id) {
    state.openRun = id;
    try {
      state.details.set(id, await api('GET', `/push-runs/${id}`));
    } catch (error) {
      showLoadError(error);
    }
    renderDetail();
    $('#run-detail').scrollIntoView({ block: 'nearest' });
  }

  // -- loading and following runs ---------------------------------------------------------------

  function showLoadError(error) {
    const box = $('#load-error');
    box.hidden = !error;
    box.textContent = error ? error.message : '';
  }

  function stamp() {
    const p = parts(new Date());
    $('#updated').textContent = `更新于 ${p.hour}:${p.minute}`;
  }

  async function loadDetails(ids) {
    await Promise.all([...ids].map(async (id) => state.details.set(id, await api('GET', `/push-runs/${id}`))));
  }

  /** Reload pushes, runs, and the details of running and opened runs; then render everything. */
  async function refresh() {
    if (state.loading) { // one load at a time; a change made meanwhile gets a fresh load after it
      state.again = true;
      return state.loading;
    }
    state.loading = load().finally(() => { state.loading = null; });
    await state.loading;
    if (state.again) {
      state.again = false;
      return refresh();
    }
    follow();
  }

  async function load() {
    try {
      const [pushes, runs] = await Promise.all([api('GET', '/pushes'), api('GET', '/push-runs')]);
      state.pushes = pushes.pushes;
      state.runs = runs.runs;
      const ids = new Set(state.runs.filter(isRunning).map((r) => r.id));
      if (state.openRun) ids.add(state.openRun);
      await loadDetails(ids);
      showLoadError(null);
      renderPushes();
      renderRuns();
      stamp();
      body.dataset.state = 'ready';
    } catch (error) {
      showLoadError(error);
      body.dataset.state = 'error';
    }
  }

  /** While a run is being created, follow it every second (its details only); while one waits, refresh slowly. */
  function follow() {
    clearTimeout(state.timer);
    state.timer = null;
    const running = state.runs.filter(isRunning);
    if (!running.length) return;
    const creating = running.some((r) => (state.details.get(r.id) || r).status === 'creating');
    state.timer = setTimeout(creating ? tick : refresh, creating ? CREATING_MS : POLLING_MS);
  }

  async function tick() {
    const creating = state.runs.filter((r) => (state.details.get(r.id) || r).status === 'creating');
    try {
      await loadDetails(creating.map((r) => r.id));
    } catch (error) {
      showLoadError(error);
    }
    // A run that left ``creating`` moves section: reload the lists.
    if (creating.some((r) => (state.details.get(r.id) || r).status !== 'creating')) return refresh();
    for (const run of creating) Object.assign(run, state.details.get(run.id));
    renderRuns();
    follow();
  }

  // -- the create form --------------------------------------------------------------------------

  const form = $('#push-form');

  function showKinds(selector, kind) {
    for (const box of form.querySelectorAll(selector)) box.hidden = !box.dataset.kind.split(' ').includes(kind);
  }

  function ids(text) {
    return text.split(/[\s,，、;；]+/).filter(Boolean);
  }

  function updateBytes() {
    const size = new TextEncoder().encode($('#f-text').value).length;
    const counter = $('#f-text-bytes');
    counter.textContent = String(size);
    counter.classList.toggle('bad', size > TEXT_MAX);
  }

  function formBody() {
    const kind = $('#f-aud-kind').value;
    let audience = { kind };
    if (kind === 'tags') audience = { kind, tag_ids: ids($('#f-tag-ids').value), match: $('#f-tag-match').value };
    else if (kind === 'segment') audience = { kind, segment_id: $('#f-segment-id').value.trim() };
    else if (kind === 'customers') audience = { kind, customer_ids: ids($('#f-customer-ids').value) };
    else audience = { kind, owners: ids($('#f-owners').value), name_contains: $('#f-group-name').value.trim() };
    const attachments = [];
    const title = $('#f-link-title').value.trim();
    const url = $('#f-link-url').value.trim();
    if (title || url) attachments.push({ type: 'link', title, url });
    const schedKind = $('#f-sched-kind').value;
    let schedule = { kind: schedKind };
    if (schedKind === 'once') schedule = { kind: 'once', at: $('#f-at').value };
    else if (schedKind === 'daily') schedule = { kind: 'daily', time: $('#f-time').value };
    else {
      schedule = { kind: 'weekly', time: $('#f-time').value,
        weekdays: [...form.querySelectorAll('input[name=weekday]:checked')].map((b) => Number(b.value)) };
    }
    const data = { name: $('#f-name').value, audience, content: { text: $('#f-text').value, attachments }, schedule };
    const cap = $('#f-cap').value.trim();
    if (cap) data.cap = Number(cap);
    return data;
  }

  /** The form control the API's error field names (the longest data-field that is a prefix of it). */
  function fieldBox(field) {
    let best = null;
    for (const box of form.querySelectorAll('[data-field]')) {
      const f = box.dataset.field;
      if ((field === f || field.startsWith(f + '.') || field.startsWith(f + '[')) && (!best || f.length > best.dataset.field.length)) best = box;
    }
    return best;
  }

  function fieldLabel(field) {
    let key = field.replace(/\[\d+\].*$/, '');
    while (key && !FIELD_LABELS[key]) key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '';
    return FIELD_LABELS[key] || '';
  }

  function clearFormError() {
    const box = $('#form-error');
    box.hidden = true;
    box.replaceChildren();
    for (const bad of form.querySelectorAll('.invalid')) bad.classList.remove('invalid');
    for (const bad of form.querySelectorAll('[aria-invalid]')) bad.removeAttribute('aria-invalid');
  }

  function showFormError(error) {
    const box = $('#form-error');
    const label = fieldLabel(error.field || '');
    box.replaceChildren(label ? el('b', { class: 'field-name', text: `${label}：` }) : '', el('span', { class: 'msg', text: error.message }));
    box.dataset.field = error.field || '';
    box.hidden = false;
    const target = error.field ? fieldBox(error.field) : null;
    if (target) {
      target.classList.add('invalid');
      const input = target.matches('input,textarea,select') ? target : target.querySelector('input,textarea,select');
      if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
    }
  }

  async function submit(event) {
    event.preventDefault();
    clearFormError();
    $('#form-ok').hidden = true;
    const button = $('#f-submit');
    button.disabled = true;
    try {
      const push = await api('POST', '/pushes', formBody());
      replacePush(push);
      renderPushes();
      const next = (push.upcoming || []).find((r) => !r.cancelled);
      const ok = $('#form-ok');
      ok.textContent = `已创建「${push.name}」${next ? `，下次发送：${when(next.at)}` : ''}`;
      ok.hidden = false;
      form.reset();
      $('#f-at').value = nextHourLocal();
      showKinds('.aud', $('#f-aud-kind').value);
      showKinds('.sched', $('#f-sched-kind').value);
      updateBytes();
    } catch (error) {
      showFormError(error);
    } finally {
      button.disabled = false;
    }
  }

  // -- pickers: the names behind the ids the audience inputs take ---------------------------------

  /** Mark the picks whose ids are in their input. */
  function markPicks() {
    for (const box of form.querySelectorAll('.picks')) {
      const chosen = new Set(ids($('#' + box.dataset.into).value));
      for (const b of box.querySelectorAll('button')) {
        b.classList.toggle('on', chosen.has(b.dataset.id));
        b.setAttribute('aria-pressed', String(chosen.has(b.dataset.id)));
      }
    }
  }

  function pick(box, id) {
    const input = $('#' + box.dataset.into);
    if (box.dataset.multi) {
      const have = ids(input.value);
      input.value = (have.includes(id) ? have.filter((x) => x !== id) : [...have, id]).join(', ');
    } else {
      input.value = id;
    }
    markPicks();
  }

  /** Segments, tags and group owners by name under their inputs (the inputs still take ids typed in). */
  async function loadOptions() {
    let options;
    try {
      options = await api('GET', '/push-options');
    } catch (error) {
      return; // only a convenience: the inputs work without it
    }
    for (const box of form.querySelectorAll('.picks')) {
      const items = options[box.dataset.pick] || [];
      box.replaceChildren(...items.map((item) => {
        const id = String(item.id ?? item.userid);
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'pick';
        b.dataset.id = id;
        b.textContent = item.group ? `${item.group} · ${item.name}` : (item.name || id);
        b.title = `编号 ${id}`;
        b.addEventListener('click', () => pick(box, id));
        return b;
      }));
      box.hidden = !items.length;
    }
    markPicks();
  }

  // -- wiring -----------------------------------------------------------------------------------

  $('#f-aud-kind').addEventListener('change', (e) => { showKinds('.aud', e.target.value); loadOptions(); });
  for (const id of ['f-tag-ids', 'f-segment-id', 'f-owners']) $('#' + id).addEventListener('input', markPicks);
  $('#f-sched-kind').addEventListener('change', (e) => showKinds('.sched', e.target.value));
  $('#f-text').addEventListener('input', updateBytes);
  form.addEventListener('submit', submit);
  $('#refresh').addEventListener('click', () => { refresh(); loadOptions(); });
  $('#run-detail-close').addEventListener('click', () => { state.openRun = null; renderDetail(); });
  $('#f-at').value = nextHourLocal();
  updateBytes();
  refresh();
  loadOptions();
})();
