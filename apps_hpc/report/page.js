"use strict";
// The problem browser of report/index.html. Data: <script id="data-index"> (every problem's
// difficulty, c/n and verdict counts per model) decoded at load; <script id="data-chunk-N">
// (statements, programs, failures of `index.chunk` problems) decoded when one is opened.
// Both are gzip + base64, decoded with DecompressionStream; nothing is fetched.
(function () {
  const root = document.getElementById("browser");
  if (!root) return;
  const LABEL = {
    pass: "pass", wrong_answer: "wrong answer", timeout: "timeout",
    runtime_error: "runtime error", compile_error: "compile error",
  };
  const PAGE = 100;
  const chunks = new Map();
  const state = { difficulty: "", model: "", verdict: "", text: "", page: 0 };
  let index = null;
  let shown = [];

  async function unpack(id) {
    const text = document.getElementById(id).textContent.trim();
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return node;
  }

  function cellMatches(cells, i, verdict) {
    const cell = cells[i];
    if (!cell) return false;
    if (!verdict) return true;
    if (verdict === "solved") return cell[0] > 0;
    if (verdict === "unsolved") return cell[0] === 0;
    if (verdict === "only") return cell[0] > 0 && cells.every((o, j) => j === i || !o || o[0] === 0);
    return cell[2][index.verdicts.indexOf(verdict)] > 0;
  }

  function matches(row) {
    const [key, difficulty, cells] = row;
    if (state.difficulty && difficulty !== state.difficulty) return false;
    if (state.text && !key.includes(state.text)) return false;
    const which = state.model ? [index.models.indexOf(state.model)] : index.models.map((_, i) => i);
    return which.some((i) => cellMatches(cells, i, state.verdict));
  }

  function bar(cell) {
    const b = el("span", { class: "bar", title: index.verdicts.map((v, i) => `${LABEL[v]}: ${cell[2][i]}`).join(", ") });
    index.verdicts.forEach((v, i) => {
      if (cell[2][i]) b.append(el("span", { class: `v-${v}`, style: `width:${(100 * cell[2][i]) / cell[1]}%` }));
    });
    return b;
  }

  function select(name, label, options) {
    const s = el("select", { name, on: { change: (e) => { state[name] = e.target.value; state.page = 0; renderList(); } } });
    for (const [value, text] of options) s.append(el("option", { value }, text));
    return el("label", {}, label, s);
  }

  function filters() {
    const difficulties = [...new Set(index.rows.map((r) => r[1]))].sort();
    const verdicts = [["", "any"], ["solved", "solved (c > 0)"], ["unsolved", "unsolved (c = 0)"],
      ["only", "solved only by this model"], ...index.verdicts.map((v) => [v, `has ${LABEL[v]}`])];
    const text = el("input", { name: "text", type: "search", placeholder: "id", size: 8,
      on: { input: (e) => { state.text = e.target.value.trim(); state.page = 0; renderList(); } } });
    return el("div", { class: "filters" },
      select("difficulty", "difficulty", [["", "all"], ...difficulties.map((d) => [d, d])]),
      select("model", "model", [["", "any"], ...index.models.map((m) => [m, m])]),
      select("verdict", "verdict", verdicts),
      el("label", {}, "problem", text));
  }

  function renderList() {
    shown = index.rows.filter(matches);
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const head = el("tr", {}, el("th", {}, "problem"), el("th", {}, "difficulty"),
      ...index.models.map((m) => el("th", {}, `${m} c/n`)));
    const body = el("tbody");
    for (const [key, difficulty, cells] of shown.slice(state.page * PAGE, (state.page + 1) * PAGE)) {
      body.append(el("tr", { "data-key": key, on: { click: () => { location.hash = `problem=${key}`; } } },
        el("td", {}, key), el("td", {}, difficulty),
        ...cells.map((c) => el("td", {}, c ? `${c[0]}/${c[1]}` : "–", c ? bar(c) : null))));
    }
    const move = (d) => () => { state.page += d; renderList(); };
    const pager = el("div", { class: "pager" },
      el("button", { type: "button", on: { click: move(-1) } }, "◀"),
      el("button", { type: "button", on: { click: move(1) } }, "▶"),
      `page ${state.page + 1} of ${pages}`);
    pager.children[0].disabled = state.page === 0;
    pager.children[1].disabled = state.page >= pages - 1;
    const list = document.getElementById("plist-wrap");
    list.replaceChildren(
      el("p", { id: "pcount" }, `${shown.length} of ${index.rows.length} problems`),
      el("table", { id: "plist" }, el("thead", {}, head), body), pager);
  }

  function failureBlock(f) {
    if (!f) return null;
    const cell = (text) => el("td", {}, text === null || text === undefined ? "–" : el("pre", {}, String(text)));
    return el("table", { class: "failure" },
      el("tr", {}, ...["first failing test", "input", "expected", "got", "error"].map((h) => el("th", {}, h))),
      el("tr", {}, el("td", {}, `#${f.test}`), cell(f.input), cell(f.expected), cell(f.got), cell(f.error)));
  }

  function programs(name, m) {
    const out = el("div", { class: "model", "data-model": name });
    m.verdicts.forEach((v, j) => {
      const f = m.failures ? m.failures[j] : null;
      const code = m.codes ? el("pre", { class: "code" }, m.codes[j]) : el("p", {}, "(program not found)");
      out.append(el("details", { class: "prog", "data-verdict": v },
        el("summary", {}, `program ${j + 1}: `, el("span", { class: `badge v-${v}` }, LABEL[v] || v)),
        code));
      if (f) out.append(failureBlock(f));
    });
    return out;
  }

  async function showDetail(key) {
    const i = index.rows.findIndex((r) => r[0] === key);
    const box = document.getElementById("detail");
    if (i < 0) { box.replaceChildren(el("p", {}, `no problem ${key}`)); return; }
    const n = Math.floor(i / index.chunk);
    if (!chunks.has(n)) chunks.set(n, await unpack(`data-chunk-${n}`));
    const d = chunks.get(n)[key];
    const row = index.rows[i];
    const parts = [el("h3", {}, `${key} (${row[1]})`)];
    parts.push(d.prompt ? el("details", { open: "" }, el("summary", {}, "statement"), el("pre", { class: "statement" }, d.prompt))
      : el("p", {}, "(statement not found)"));
    for (const [name, m] of Object.entries(d.models)) {
      const c = m.verdicts.filter((v) => v === "pass").length;
      parts.push(el("h4", {}, `${name}: ${c}/${m.verdicts.length} pass`), programs(name, m));
    }
    box.replaceChildren(...parts);
    box.dataset.key = key;
    box.scrollIntoView();
  }

  function fromHash() {
    const m = /^#problem=(.+)$/.exec(location.hash);
    if (m) showDetail(decodeURIComponent(m[1])).catch(fail);
  }

  function fail(err) {
    console.error(err);
    root.append(el("p", { class: "warn" }, `problem browser: ${err}`));
  }

  async function start() {
    index = await unpack("data-index");
    root.replaceChildren(filters(), el("div", { id: "plist-wrap" }), el("div", { id: "detail" }));
    renderList();
    window.addEventListener("hashchange", fromHash);
    fromHash();
    document.body.dataset.ready = "1";
    document.body.dataset.renderMs = String(Math.round(performance.now()));
  }

  start().catch(fail);
})();
