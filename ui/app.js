// The cyme operator dashboard: the cluster's instances and the latest
// supervisor events, kept live from the branch's event stream (/events/).
// Plain JS, no framework, nothing loaded from elsewhere. Every piece of data
// reaches the page through textContent or setAttribute, never as HTML.
"use strict";

(() => {
  /** How many events the list keeps. */
  const EVENTS_LIMIT = 200;
  /** Events arriving within this time cost one re-fetch of their app. */
  const REFRESH_DEBOUNCE_MS = 250;
  /** Reconnection delays after the stream closed, doubling up to the last. */
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const TOKEN_KEY = "cyme.token";
  const ERRORS_KEPT = 5;

  // Set once per page load: a page that updates itself keeps it.
  window.cymeDashboard = {
    loadedAt: new Date().toISOString(),
    loadId: Math.random().toString(36).slice(2),
  };

  /** Where the API is: the page is at BASE/ui/ ("" on the branch itself,
   * "/prefix" behind a proxy that serves the branch under /prefix/). */
  const BASE = location.pathname.replace(/\/ui(\/[^/]*)?$/, "");

  const $ = (selector) => document.querySelector(selector);
  const el = {
    connection: $("#connection"),
    connectionText: $("#connection-text"),
    filter: $("#app-filter"),
    refresh: $("#refresh"),
    summary: $("#summary"),
    notice: $("#notice"),
    errors: $("#errors"),
    instances: $("#instances tbody"),
    instancesEmpty: $("#instances-empty"),
    events: $("#events tbody"),
    eventsEmpty: $("#events-empty"),
    eventsLimit: $("#events-limit"),
    dialog: $("#token-dialog"),
    tokenInput: $("#token-input"),
    tokenReason: $("#token-reason"),
    tokenCancel: $("#token-cancel"),
  };

  const state = {
    /** App names, sorted. */
    apps: [],
    /** app -> {list: [instance], fetchedAt: ms (performance.now())} */
    instances: new Map(),
    /** app -> number of the latest fetch started; older answers are dropped. */
    fetchSeq: new Map(),
    /** The latest events, newest first, at most EVENTS_LIMIT. */
    events: [],
    /** Events not rendered yet (highlighted once). */
    fresh: new Set(),
    lastEventId: null,
    /** "" for all apps. */
    filter: "",
  };

  // ---------------------------------------------------------------- helpers

  const enc = encodeURIComponent;

  /** States an instance leaves without an event: starting, unresponsive. */
  const IN_BETWEEN = new Set(["starting", "unresponsive"]);

  /** The API's own first path segments: an app so named is at /apps/<name>/. */
  const RESERVED = new Set(["supervisor", "events", "metrics", "ui", "apps"]);

  /** The path of an app ("/shop", or "/apps/events" for a reserved name). */
  function appPath(app) {
    return RESERVED.has(app) ? `/apps/${enc(app)}` : `/${enc(app)}`;
  }

  function text(value) {
    if (value === null || value === undefined || value === "") return "-";
    return String(value);
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function pad(n, width = 2) {
    return String(n).padStart(width, "0");
  }

  /** "14:03:07.123" in local time, with the date when not today. */
  function formatTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return text(iso);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  /** "3d 4h", "2h 05m", "4m 03s", "12s". */
  function formatDuration(seconds) {
    if (!isNumber(seconds) || seconds < 0) return "-";
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = s % 60;
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${pad(m)}m`;
    if (m > 0) return `${m}m ${pad(r)}s`;
    return `${r}s`;
  }

  /** A class-name-safe form of a word from the API. */
  function token(word) {
    return String(word).toLowerCase().replace(/[^a-z0-9_-]/g, "_");
  }

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  }

  function setToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Storage refused (private mode): the token lasts until the next 401.
    }
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** Header fields of a request, with the saved token when there is one. */
  function headersFor(accept) {
    const headers = { Accept: accept };
    const saved = getToken();
    if (saved) headers.Authorization = `Bearer ${saved}`;
    return headers;
  }

  /**
   * One request to the branch; resolves to its JSON answer, or rejects with
   * an ApiError carrying the status and the `error` sentence of the body.
   */
  async function request(method, path) {
    let response;
    try {
      response = await fetch(BASE + path, {
        method,
        headers: headersFor("application/json"),
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(0, `the branch cannot be reached (${e.message})`);
    }
    const body = await response.text();
    let json = null;
    if (body) {
      try {
        json = JSON.parse(body);
      } catch {
        json = null;
      }
    }
    if (!response.ok) {
      const sentence =
        json && typeof json.error === "string" && json.error
          ? json.error
          : `${response.status} ${response.statusText}`.trim();
      throw new ApiError(response.status, sentence);
    }
    return json;
  }

  /**
   * Asks for the token after `refusal` (a 401: a change, or any request on
   * a branch that wants the token for reads too). Resolves to true when one
   * was given; a saved token that was refused is forgotten.
   */
  async function tokenAfter(refusal) {
    const saved = getToken();
    if (saved) setToken(null);
    const given = await askToken(
      saved ? `The saved token was refused: ${refusal.message}` : refusal.message,
    );
    if (!given) return false;
    setToken(given);
    return true;
  }

  /** `request`, asking for the token on a 401 and trying once more with it. */
  async function api(method, path) {
    try {
      return await request(method, path);
    } catch (e) {
      if (e.status !== 401) throw e;
      if (!(await tokenAfter(e)))
        throw new ApiError(
          401,
          method === "GET" ? "no token given, nothing was read" : "no token given, nothing was changed",
        );
      try {
        return await request(method, path);
      } catch (again) {
        if (again.status === 401) setToken(null); // refused: asked again next time
        throw again;
      }
    }
  }

  // --------------------------------------------------------------- messages

  /**
   * Shows `message` at the top of the error list. `about` (a read, an action
   * on an instance) lets a later success of the same take it away.
   */
  function showError(message, about = "") {
    const p = document.createElement("p");
    p.dataset.about = about;
    const words = document.createElement("span");
    words.textContent = message;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.textContent = "Dismiss";
    dismiss.setAttribute("aria-label", `Dismiss: ${message}`);
    dismiss.addEventListener("click", () => {
      p.remove();
      el.filter.focus();
    });
    p.append(words, " ", dismiss);
    el.errors.prepend(p);
    while (el.errors.children.length > ERRORS_KEPT) el.errors.lastElementChild.remove();
  }

  function clearErrors(about) {
    for (const p of [...el.errors.children]) if (p.dataset.about === about) p.remove();
  }

  function notice(message) {
    el.notice.textContent = message;
  }

  // ----------------------------------------------------------- connection

  function setConnection(kind, words) {
    el.connection.dataset.state = kind;
    el.connectionText.textContent = words;
  }

  // ---------------------------------------------------------------- loading

  function setApps(names) {
    const apps = [...new Set(names.filter((n) => typeof n === "string"))].sort();
    const changed = apps.join("\n") !== state.apps.join("\n");
    state.apps = apps;
    for (const app of [...state.instances.keys()])
      if (!apps.includes(app)) state.instances.delete(app);
    if (changed) renderFilter();
    return changed;
  }

  async function refreshApps() {
    try {
      const names = await api("GET", "/");
      if (!Array.isArray(names)) throw new ApiError(0, "the app list is not a JSON array");
      const before = new Set(state.apps);
      clearErrors("read");
      setApps(names);
      render();
      return state.apps.filter((app) => !before.has(app));
    } catch (e) {
      clearErrors("read");
      showError(`Could not read the apps: ${e.message}`, "read");
      return [];
    }
  }

  async function refreshApp(app) {
    const seq = (state.fetchSeq.get(app) || 0) + 1;
    state.fetchSeq.set(app, seq);
    try {
      const list = await api("GET", `${appPath(app)}/instances/`);
      if (state.fetchSeq.get(app) !== seq) return; // a later fetch wins
      if (!Array.isArray(list)) throw new ApiError(0, "the instance list is not a JSON array");
      if (!state.apps.includes(app)) setApps([...state.apps, app]);
      state.instances.set(app, { list, fetchedAt: performance.now() });
      clearErrors(`read\n${app}`);
    } catch (e) {
      if (state.fetchSeq.get(app) !== seq) return;
      if (e.status === 404) {
        // The app is gone.
        setApps(state.apps.filter((a) => a !== app));
      } else {
        clearErrors(`read\n${app}`);
        showError(`Could not read the instances of ${app}: ${e.message}`, `read\n${app}`);
      }
    }
    render();
  }

  async function refreshAll() {
    await refreshApps();
    await Promise.all(state.apps.map(refreshApp));
  }

  const pending = new Map(); // app ("" for all) -> timer
  /** Re-fetches `app`'s instances (every app when ""), debounced. */
  function scheduleRefresh(app, delay = REFRESH_DEBOUNCE_MS) {
    if (pending.has("")) return; // everything is about to be re-fetched
    if (app === "") {
      for (const timer of pending.values()) clearTimeout(timer);
      pending.clear();
    } else if (pending.has(app)) {
      return;
    }
    pending.set(
      app,
      setTimeout(() => {
        pending.delete(app);
        if (app === "") refreshAll();
        else refreshApp(app);
      }, delay),
    );
  }

  // ------------------------------------------------------------------ events

  function addEvent(ev) {
    if (!ev || typeof ev !== "object") return false;
    if (isNumber(ev.id)) {
      // A stream hands events after the last one seen (since= or
      // Last-Event-ID), so a number not above it means the branch started
      // again and counts from 1: followed from there all the same.
      state.lastEventId = ev.id;
    }
    state.fresh.add(ev);
    // Newest first. One stream hands its events in order, the backlog after
    // a reconnection included, so arrival order is their order.
    state.events.unshift(ev);
    while (state.events.length > EVENTS_LIMIT) state.fresh.delete(state.events.pop());
    return true;
  }

  function onEvent(message) {
    let ev;
    try {
      ev = JSON.parse(message.data);
    } catch {
      return; // not JSON: nothing to show
    }
    if (!addEvent(ev)) return;
    renderEventsSoon();
    const app = typeof ev.app === "string" ? ev.app : "";
    if (app !== "") {
      if (!state.apps.includes(app)) scheduleRefresh("");
      else scheduleRefresh(app);
    } else if (ev.kind === "round_finished") {
      // An instance that answers its first ping, or again, raises no event
      // of its own: a round re-fetches the apps showing one in between.
      for (const [name, { list }] of state.instances)
        if (list.some((inst) => inst && IN_BETWEEN.has(inst.state))) scheduleRefresh(name);
    } else if (ev.kind !== "autoscale") {
      // Supervisor-wide: pause, broker down or up, ... may touch every app.
      scheduleRefresh("");
    }
  }

  let retryDelay = RETRY_MIN_MS;
  let wasLive = false;

  /**
   * Hands each event of a Server-Sent Events body to onEvent: a block ends
   * with an empty line, and an event's data is its "data:" lines joined.
   */
  async function readEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let blank;
      while ((blank = /\r?\n\r?\n/.exec(buffer)) !== null) {
        const block = buffer.slice(0, blank.index);
        buffer = buffer.slice(blank.index + blank[0].length);
        const data = block
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5));
        if (data.length > 0) onEvent({ data: data.join("\n") });
      }
    }
  }

  /**
   * Follows /events/ with fetch, which can send the token (an EventSource
   * cannot): the first stream from now on, each later one from the last
   * event seen (since=). A stream that ends or cannot be made is made again
   * after a delay that doubles up to RETRY_MAX_MS. A 400 or 410 (the branch
   * started again and counts from 1, or the events are no longer kept)
   * follows from now on; a 401 asks for the token.
   */
  async function connect() {
    const since = state.lastEventId;
    const url = BASE + (since === null ? "/events/" : `/events/?since=${enc(since)}`);
    setConnection("connecting", wasLive ? "reconnecting" : "connecting");
    let response = null;
    try {
      response = await fetch(url, { headers: headersFor("text/event-stream"), cache: "no-store" });
    } catch {
      response = null;
    }
    if (response && !response.ok) {
      let sentence = `${response.status} ${response.statusText}`.trim();
      try {
        sentence = (await response.json()).error || sentence;
      } catch {
        // the status line, then
      }
      if (response.status === 401 && (await tokenAfter(new ApiError(401, sentence)))) {
        connect();
        return;
      }
      if (response.status === 400 || response.status === 410) {
        state.lastEventId = null;
        retryDelay = RETRY_MIN_MS;
      }
      response = null;
    }
    if (response && response.body) {
      retryDelay = RETRY_MIN_MS;
      setConnection("live", "live");
      // Whatever happened while the stream was down is fetched again.
      if (wasLive) scheduleRefresh("", 0);
      wasLive = true;
      try {
        await readEvents(response.body);
      } catch {
        // the stream broke: made again below
      }
    }
    const seconds = Math.round(retryDelay / 1000);
    setConnection("closed", `disconnected, retrying in ${seconds} s`);
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
  }

  // ---------------------------------------------------------------- actions

  let tokenPrompt = null;

  /** Asks for the branch's token in the dialog; resolves to it, or null. */
  function askToken(reason) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const back = document.activeElement;
      el.tokenReason.textContent = reason || "";
      el.tokenInput.value = "";
      el.dialog.returnValue = "";
      const onClose = () => {
        el.dialog.removeEventListener("close", onClose);
        const value = el.tokenInput.value.trim();
        el.tokenInput.value = "";
        tokenPrompt = null;
        if (back && back.isConnected && typeof back.focus === "function") back.focus();
        resolve(el.dialog.returnValue === "ok" && value ? value : null);
      };
      el.dialog.addEventListener("close", onClose);
      el.dialog.showModal();
      el.tokenInput.focus();
    });
    return tokenPrompt;
  }

  el.tokenCancel.addEventListener("click", () => el.dialog.close("cancel"));

  const verbs = { restart: "Restart", disable: "Disable", enable: "Enable" };

  /** POSTs `action` for `inst`, asking for the token on the first 401. */
  async function act(row, action) {
    if (row.busy) return;
    const { app, name } = row.inst;
    const button = row.buttons[action];
    row.busy = true;
    row.tr.setAttribute("aria-busy", "true");
    button.setAttribute("aria-busy", "true");
    notice(`${verbs[action]} ${name} (${app}): sent`);
    const path = `${appPath(app)}/instances/${enc(name)}/${action}/`;
    const about = `${action}\n${app}\n${name}`;
    try {
      await api("POST", path);
      clearErrors(about);
      notice(`${verbs[action]} ${name} (${app}): done`);
    } catch (e) {
      notice("");
      showError(`${verbs[action]} ${name} (${app}): ${e.message}`, about);
    } finally {
      row.busy = false;
      row.tr.removeAttribute("aria-busy");
      button.removeAttribute("aria-busy");
      scheduleRefresh(app, 0);
    }
  }

  // --------------------------------------------------------------- rendering

  function renderFilter() {
    const keep = state.filter;
    const options = [["", "all apps"], ...state.apps.map((a) => [a, a])];
    if (keep && !state.apps.includes(keep)) options.push([keep, `${keep} (gone)`]);
    el.filter.replaceChildren(
      ...options.map(([value, label]) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = label;
        return option;
      }),
    );
    el.filter.value = keep;
  }

  function setFilter(app) {
    state.filter = app;
    const hash = app ? `#app=${enc(app)}` : "";
    if (location.hash !== hash)
      history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
    renderFilter();
    render();
    renderEvents();
  }

  const rows = new Map(); // key -> row

  function rowKey(inst) {
    return `${inst.app}\n${inst.branch}\n${inst.name}`;
  }

  function makeRow() {
    const tr = document.createElement("tr");
    const td = (cls) => {
      const cell = document.createElement("td");
      if (cls) cell.className = cls;
      tr.append(cell);
      return cell;
    };
    const row = { tr, busy: false, inst: null, buttons: {} };
    row.app = td();
    row.name = document.createElement("th");
    row.name.scope = "row";
    tr.append(row.name);
    row.branch = td();
    const stateCell = td();
    row.state = document.createElement("span");
    row.reason = document.createElement("span");
    row.reason.className = "reason";
    stateCell.append(row.state, row.reason);
    row.pid = td("num pid");
    row.uptime = td("num uptime");
    row.restarts = td("num restarts");
    row.queues = td("queues");
    row.concurrency = td("concurrency");
    row.lastExit = td("last-exit");
    // A group in the cell (a cell itself laid out as flex loses its table role).
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.setAttribute("role", "group");
    td().append(actions);
    row.actions = actions;
    for (const action of ["restart", "disable", "enable"]) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = verbs[action];
      button.dataset.action = action;
      if (action === "disable") button.className = "danger";
      button.addEventListener("click", () => act(row, action));
      actions.append(button);
      row.buttons[action] = button;
    }
    return row;
  }

  function set(node, value) {
    if (node.textContent !== value) node.textContent = value;
  }

  function setAttr(node, name, value) {
    if (value === null) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== value) {
      node.setAttribute(name, value);
    }
  }

  function uptimeOf(inst, fetchedAt) {
    if (isNumber(inst.uptime_s)) {
      const growing = inst.state === "running" || inst.state === "unresponsive";
      return inst.uptime_s + (growing ? (performance.now() - fetchedAt) / 1000 : 0);
    }
    if (typeof inst.started_at === "string" && inst.state === "running") {
      const t = Date.parse(inst.started_at);
      if (!Number.isNaN(t)) return Math.max(0, (Date.now() - t) / 1000);
    }
    return null;
  }

  function lastExitText(exit) {
    if (!exit || typeof exit !== "object") return ["-", null];
    let what = "-";
    if (typeof exit.signal === "string" && exit.signal)
      what = /^SIG/.test(exit.signal) ? exit.signal : `signal ${exit.signal}`;
    else if (isNumber(exit.code)) what = `code ${exit.code}`;
    if (typeof exit.at === "string" && exit.at) return [`${what} at ${formatTime(exit.at)}`, exit.at];
    return [what, null];
  }

  /** Enables and disables the row's buttons; a focused button being
   * disabled hands the focus on to one usable in the same row. */
  function setButtons(row, usable) {
    const off = [];
    for (const [action, enabled] of Object.entries(usable)) {
      const button = row.buttons[action];
      if (enabled) button.disabled = false;
      else if (!button.disabled) off.push(button);
    }
    const hadFocus = off.includes(document.activeElement);
    for (const button of off) button.disabled = true;
    if (hadFocus) {
      const next = Object.values(row.buttons).find((b) => !b.disabled);
      if (next) next.focus();
    }
  }

  function updateRow(row, inst, fetchedAt) {
    row.inst = inst;
    row.fetchedAt = fetchedAt;
    const label = `${text(inst.name)} (${text(inst.app)})`;
    setAttr(row.tr, "data-app", String(inst.app));
    setAttr(row.tr, "data-name", String(inst.name));
    set(row.app, text(inst.app));
    set(row.name, text(inst.name));
    set(row.branch, text(inst.branch));

    const st = text(inst.state);
    set(row.state, st);
    row.state.className = `state state-${token(st)}`;
    let reason = "";
    if (typeof inst.disabled_reason === "string") reason = inst.disabled_reason;
    if (inst.supervised === false) reason = reason ? `${reason}; unsupervised` : "unsupervised";
    set(row.reason, reason);
    setAttr(row.tr, "data-state", st);

    set(row.pid, isNumber(inst.pid) && inst.pid > 0 ? String(inst.pid) : "-");
    set(row.uptime, formatDuration(uptimeOf(inst, fetchedAt)));
    set(row.restarts, isNumber(inst.restarts) ? String(inst.restarts) : "-");

    const queues = Array.isArray(inst.queues) ? inst.queues.map(String) : [];
    set(row.queues, queues.length ? queues.join(", ") : "-");
    const consuming = Array.isArray(inst.consuming_from) ? inst.consuming_from.map(String) : null;
    setAttr(row.queues, "title", consuming ? `consuming from: ${consuming.join(", ") || "none"}` : null);

    let concurrency = isNumber(inst.concurrency) ? String(inst.concurrency) : "-";
    if (isNumber(inst.min_concurrency) && isNumber(inst.max_concurrency))
      concurrency += ` (${inst.min_concurrency}\u2013${inst.max_concurrency})`;
    set(row.concurrency, concurrency);
    setAttr(row.concurrency, "title", "current (min\u2013max)");

    const [exitText, exitAt] = lastExitText(inst.last_exit);
    set(row.lastExit, exitText);
    setAttr(row.lastExit, "title", exitAt);

    setAttr(row.actions, "aria-label", `Actions on ${label}`);
    for (const action of Object.keys(row.buttons))
      setAttr(row.buttons[action], "aria-label", `${verbs[action]} ${label}`);
    const enabled = inst.is_enabled;
    setButtons(row, { restart: enabled !== false, disable: enabled !== false, enable: enabled !== true });
  }

  function visibleApps() {
    return state.filter ? state.apps.filter((a) => a === state.filter) : state.apps;
  }

  function render() {
    const wanted = [];
    let total = 0;
    let running = 0;
    for (const app of visibleApps()) {
      const entry = state.instances.get(app);
      if (!entry) continue;
      const list = entry.list
        .filter((i) => i && typeof i === "object")
        .map((i) => ({ ...i, app: typeof i.app === "string" && i.app ? i.app : app }))
        .sort((a, b) => String(a.name).localeCompare(String(b.name)) ||
          String(a.branch).localeCompare(String(b.branch)));
      for (const inst of list) {
        wanted.push([inst, entry.fetchedAt]);
        total += 1;
        if (inst.state === "running") running += 1;
      }
    }
    const keep = new Set();
    wanted.forEach(([inst, fetchedAt], index) => {
      const key = rowKey(inst);
      keep.add(key);
      let row = rows.get(key);
      if (!row) {
        row = makeRow();
        rows.set(key, row);
      }
      updateRow(row, inst, fetchedAt);
      // Move a row only when it is out of place (moving drops focus).
      if (el.instances.children[index] !== row.tr)
        el.instances.insertBefore(row.tr, el.instances.children[index] || null);
    });
    for (const [key, row] of rows) {
      if (!keep.has(key)) {
        row.tr.remove();
        rows.delete(key);
      }
    }
    el.instancesEmpty.hidden = total > 0;
    set(
      el.summary,
      `${total} instance${total === 1 ? "" : "s"}, ${running} running` +
        (state.filter ? ` in ${state.filter}` : ` in ${state.apps.length} app${state.apps.length === 1 ? "" : "s"}`),
    );
  }

  function tickUptimes() {
    for (const row of rows.values()) set(row.uptime, formatDuration(uptimeOf(row.inst, row.fetchedAt)));
  }

  let eventsFrame = 0;
  function renderEventsSoon() {
    if (!eventsFrame) eventsFrame = requestAnimationFrame(renderEvents);
  }

  function renderEvents() {
    eventsFrame = 0;
    const shown = state.events.filter(
      (ev) => !state.filter || ev.app === state.filter || !ev.app,
    );
    el.events.replaceChildren(
      ...shown.map((ev) => {
        const tr = document.createElement("tr");
        if (state.fresh.has(ev)) tr.className = "fresh";
        tr.dataset.kind = String(ev.kind);
        tr.dataset.app = String(ev.app ?? "");
        tr.dataset.instance = String(ev.instance ?? "");
        if (isNumber(ev.id)) tr.dataset.id = String(ev.id);

        const timeCell = document.createElement("td");
        const time = document.createElement("time");
        if (typeof ev.time === "string") time.dateTime = ev.time;
        time.textContent = formatTime(ev.time);
        timeCell.append(time);

        const kindCell = document.createElement("td");
        const kind = document.createElement("span");
        kind.className = `kind kind-${token(text(ev.kind))}`;
        kind.textContent = text(ev.kind);
        kindCell.append(kind);

        const cells = [ev.app, ev.instance, ev.branch, ev.detail].map((value) => {
          const cell = document.createElement("td");
          cell.textContent = text(value);
          return cell;
        });
        cells[3].className = "detail";
        tr.append(timeCell, kindCell, ...cells);
        return tr;
      }),
    );
    state.fresh.clear();
    el.eventsEmpty.hidden = shown.length > 0;
  }

  // ------------------------------------------------------------------ start

  el.eventsLimit.textContent = String(EVENTS_LIMIT);
  const fromHash = /^#app=(.+)$/.exec(location.hash);
  if (fromHash) {
    try {
      state.filter = decodeURIComponent(fromHash[1]);
    } catch {
      state.filter = "";
    }
  }
  renderFilter();
  el.filter.addEventListener("change", () => setFilter(el.filter.value));
  el.refresh.addEventListener("click", () => {
    notice("Refreshing");
    refreshAll().then(() => notice("Refreshed"));
  });
  render();
  renderEvents();
  setInterval(tickUptimes, 1000);
  connect();
  refreshAll();
})();
