(() => {
  const rows = JSON.parse(document.getElementById('rows').textContent);
  const pictures = JSON.parse(document.getElementById('pictures').textContent);
  const PAGE = 100;
  const state = {key: 'tuned_edits', desc: true, status: 'all', dataset: '', query: '', page: 0};
  const body = document.getElementById('sample-rows');
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
  const fmt = (v) => (Math.round(v * 1000) / 1000).toFixed(3);
  const lower = (s) => (s || '').toLowerCase();
  function reading(lines) {
    const box = el('div', 'reading');
    for (const line of lines) {
      const div = el('span', 'line');
      for (const [kind, expected, read] of line) {
        if (kind === 'e') { div.appendChild(document.createTextNode(read)); continue; }
        if (kind === 'x') { div.appendChild(el('span', 'x', read)); continue; }
        const ruby = el('ruby', kind);
        ruby.appendChild(document.createTextNode(kind === 'm' ? '\u00b7'.repeat(expected.length) : read));
        ruby.appendChild(el('rt', null, expected));
        div.appendChild(ruby);
      }
      if (!line.length) div.appendChild(document.createTextNode('\u00a0'));
      box.appendChild(div);
    }
    return box;
  }
  function matches(r) {
    if (state.dataset && r.dataset !== state.dataset) return false;
    if (state.status === 'wrong' && !r.tuned_edits) return false;
    if (state.status === 'exact' && r.tuned_edits) return false;
    if (['improved', 'regressed', 'unchanged'].includes(state.status) && r.status !== state.status) return false;
    if (state.status === 'truncated' && !r.truncated) return false;
    if (state.status === 'repetition' && !r.repetition) return false;
    if (!state.query) return true;
    const q = lower(state.query);
    return lower(r.image).includes(q) || lower(r.reference).includes(q) || lower(r.dataset).includes(q);
  }
  function selected() {
    const chosen = rows.filter(matches);
    const k = state.key, sign = state.desc ? -1 : 1;
    chosen.sort((a, b) => (a[k] < b[k] ? -sign : a[k] > b[k] ? sign : (a.image < b.image ? -1 : 1)));
    return chosen;
  }
  function render() {
    const chosen = selected();
    const pages = Math.max(1, Math.ceil(chosen.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    body.replaceChildren();
    for (const r of chosen.slice(state.page * PAGE, (state.page + 1) * PAGE)) {
      const tr = el('tr');
      tr.dataset.image = r.image; tr.dataset.status = r.status; tr.dataset.dataset = r.dataset;
      tr.dataset.tunedEdits = r.tuned_edits; tr.dataset.editChange = r.edit_change;
      tr.dataset.truncated = r.truncated; tr.dataset.repetition = r.repetition;
      const page = el('td');
      if (r.picture >= 0) {
        const img = el('img', 'thumb'); img.src = pictures[r.picture]; img.alt = r.image; img.dataset.picture = r.picture;
        page.appendChild(img);
      } else page.appendChild(el('span', 'muted', 'not embedded'));
      page.appendChild(el('div', null, r.image));
      if (r.image_path) page.appendChild(el('div', 'muted', r.image_path));
      tr.appendChild(page);
      tr.appendChild(el('td', null, r.dataset));
      tr.appendChild(el('td', 'status-' + r.status, r.status));
      tr.appendChild(el('td', 'num', r.base_edits + ' \u2192 ' + r.tuned_edits + ' (' + (r.edit_change > 0 ? '+' : '') + r.edit_change + ')'));
      tr.appendChild(el('td', 'num', fmt(r.base_cer) + ' \u2192 ' + fmt(r.tuned_cer)));
      const ended = [r.truncated ? 'token limit' : '', r.repetition ? 'loop' : ''].filter(Boolean).join(', ');
      tr.appendChild(el('td', 'num', (r.confidence === null ? '\u2013' : fmt(r.confidence)) + (ended ? ' (' + ended + ')' : '')));
      const text = el('td');
      text.appendChild(reading(r.tuned_reading));
      const base = el('details', 'base');
      base.appendChild(el('summary', null, 'base model'));
      base.appendChild(reading(r.base_reading));
      text.appendChild(base);
      tr.appendChild(text);
      body.appendChild(tr);
    }
    document.getElementById('shown').textContent = chosen.length
      ? `rows ${state.page * PAGE + 1}\u2013${Math.min((state.page + 1) * PAGE, chosen.length)} of ${chosen.length} (${rows.length} samples)`
      : `no sample matches (${rows.length} samples)`;
    document.getElementById('prev').disabled = state.page === 0;
    document.getElementById('next').disabled = state.page >= pages - 1;
    for (const th of document.querySelectorAll('th.sortable')) {
      th.classList.toggle('sorted-asc', th.dataset.key === state.key && !state.desc);
      th.classList.toggle('sorted-desc', th.dataset.key === state.key && state.desc);
    }
  }
  for (const th of document.querySelectorAll('th.sortable')) {
    th.addEventListener('click', () => {
      state.desc = th.dataset.key === state.key ? !state.desc : th.dataset.key !== 'image' && th.dataset.key !== 'dataset';
      state.key = th.dataset.key; state.page = 0; render();
    });
  }
  const bind = (id, field) => document.getElementById(id).addEventListener('input', (e) => { state[field] = e.target.value; state.page = 0; render(); });
  bind('filter-status', 'status'); bind('filter-dataset', 'dataset'); bind('search', 'query');
  document.getElementById('prev').addEventListener('click', () => { state.page -= 1; render(); });
  document.getElementById('next').addEventListener('click', () => { state.page += 1; render(); });
  const box = document.getElementById('lightbox');
  body.addEventListener('click', (e) => {
    if (!e.target.classList.contains('thumb')) return;
    box.querySelector('img').src = pictures[Number(e.target.dataset.picture)];
    box.classList.add('open');
  });
  box.addEventListener('click', () => box.classList.remove('open'));
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') box.classList.remove('open'); });
  render();
})();
