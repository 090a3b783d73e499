// The page at / of `claude-history serve`: sessions, chat, context and cost, over the public API only.
import { api, ApiError, auth } from "./api.js";
import { el, plainText, renderContent } from "./content.js";
import { ago, tokens, usd } from "./format.js";
import { renderContext, renderCost } from "./panel.js";
import { Accumulator, events } from "./sse.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const MEDIA = { "image/png": "image", "image/jpeg": "image", "image/gif": "image", "image/webp": "image",
  "application/pdf": "document" };

const state = {
  sessions: new Map(), // id -> session JSON of the listing
  cursor: null,
  current: null, // the open session's JSON
  messages: [],
  version: 0,
  costs: null,
  report: null,
  streaming: null, // AbortController of the reply being read
  streamingIn: null, // the session it is read for
  stopped: false, // Stop pressed: the service still finishes and stores the reply
  attachments: [],
  panel: "context",
};

// -- small helpers ---------------------------------------------------------------------------------------

function notice(text, error = false, action = null) {
  const box = $("notice");
  box.textContent = text || "";
  box.classList.toggle("error", error);
  if (action) box.append(" ", el("button", { type: "button", class: "notice-action", onclick: action.run }, action.label));
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your key was refused: it may have been revoked.");
    return;
  }
  // A session no turn can follow (an imported history the API would reject, or one ending with a message that
  // got no reply): the service says so before any call; offer the copy it can write.
  const stuck = error instanceof ApiError && error.status === 400 && / cannot be continued: /.test(error.message);
  notice(error.message || String(error), true, stuck ? { label: "Continue in a repaired copy", run: repairSession } : null);
}

function ask(title, text, { value = null, label = "", ok = "OK", danger = false } = {}) {
  const dialog = $("dialog");
  $("dialog-title").textContent = title;
  $("dialog-text").textContent = text || "";
  const input = $("dialog-input");
  const withInput = value !== null;
  input.hidden = !withInput;
  $("dialog-label").hidden = !withInput;
  $("dialog-label").textContent = label;
  input.value = withInput ? value : "";
  $("dialog-ok").textContent = ok;
  $("dialog-ok").classList.toggle("danger", danger);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? (withInput ? input.value : true) : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    (withInput ? input : $("dialog-ok")).focus();
  });
}

const sessionTitle = (s) => s.title || "Untitled session";

// -- signing in --------------------------------------------------------------------------------------------

function showSignin(message = "") {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("key").focus();
}

function signOut(message = "") {
  auth.clear();
  state.current = null;
  showSignin(message);
}

async function signIn(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) return;
  auth.set(key);
  try {
    await api.list({ limit: "1" });
  } catch (error) {
    auth.clear();
    $("signin-error").textContent = error instanceof ApiError && error.status === 401
      ? "This key is not valid for this service." : `The service did not answer: ${error.message}`;
    return;
  }
  $("key").value = "";
  await enter();
}

async function enter() {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("tenant").textContent = auth.get() ? "signed in" : "no authentication";
  await loadSessions();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("session");
  if (wanted) await openSession(wanted);
}

// -- the sessions sidebar ----------------------------------------------------------------------------------

async function loadSessions(more = false) {
  const params = { limit: "50", with_cost: "true" };
  const tag = $("tag-filter").value;
  if (tag) params.tag = tag;
  if (more && state.cursor) params.cursor = state.cursor;
  const page = await api.list(params);
  if (!more) state.sessions.clear();
  for (const s of page.data) state.sessions.set(s.id, s);
  state.cursor = page.next_cursor;
  $("more-sessions").hidden = !page.has_more;
  renderSessions();
}

function renderSessions() {
  const list = $("session-list");
  list.replaceChildren();
  const tags = new Set([...$("tag-filter").options].map((o) => o.value).filter(Boolean));
  for (const s of state.sessions.values()) {
    for (const t of s.tags) tags.add(t);
    const current = state.current && state.current.id === s.id;
    const meta = [s.model || "default model", `${s.turns ?? 0} ${s.turns === 1 ? "turn" : "turns"}`,
      usd(s.cost_usd), ago(s.updated_at)].join(" · ");
    list.append(el("li", {},
      el("button", { type: "button", class: current ? "session-item active" : "session-item",
        "aria-current": current ? "true" : null, "data-id": s.id, onclick: () => openSession(s.id) },
      el("span", { class: "title", text: sessionTitle(s) }),
      el("span", { class: "meta", text: meta }),
      s.tags.length ? el("span", { class: "tags", text: s.tags.map((t) => `#${t}`).join(" ") }) : null)));
  }
  if (!state.sessions.size) list.append(el("li", { class: "muted", text: "No session yet." }));
  const select = $("tag-filter");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "All tags" }),
    ...[...tags].sort().map((t) => el("option", { value: t, text: `#${t}` })));
  select.value = chosen;
}

let searchTimer = null;

function searchLater() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 250);
}

async function search() {
  const q = $("search").value.trim();
  const box = $("search-results");
  if (!q) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  try {
    const hits = (await api.search(q)).data;
    box.replaceChildren(...hits.map((h) => el("li", {}, el("button", { type: "button", class: "search-hit",
      onclick: () => openSession(h.session_id, h.seq) },
    el("span", { class: "title", text: sessionTitle(state.sessions.get(h.session_id) || { title: h.session_id }) }),
    el("span", { class: "meta", text: h.snippet })))));
    if (!hits.length) box.append(el("li", { class: "muted", text: `Nothing found for “${q}”.` }));
    box.hidden = false;
  } catch (error) {
    failed(error);
  }
}

async function newSession() {
  try {
    const created = await api.create({});
    state.sessions.set(created.id, { ...created, turns: 0, cost_usd: 0 });
    await loadSessions();
    await openSession(created.id);
    $("input").focus();
  } catch (error) {
    failed(error);
  }
}

function toggleSidebar(open) {
  const bar = $("sidebar");
  const show = open ?? !bar.classList.contains("open");
  bar.classList.toggle("open", show);
  $("menu").setAttribute("aria-expanded", String(show));
}

// -- one session ------------------------------------------------------------------------------------------

async function openSession(id, seq = null) {
  const switching = !state.current || state.current.id !== id;
  try {
    state.current = await api.get(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      state.current = null;
      $("session").hidden = true;
      $("panel").hidden = true;
      $("empty").hidden = false;
      $("empty").textContent = `Session ${id} does not exist (or is not yours).`;
      history.replaceState(null, "", "#");
      return;
    }
    failed(error);
    return;
  }
  if (new URLSearchParams(location.hash.slice(1)).get("session") !== id) {
    history.replaceState(null, "", `#session=${encodeURIComponent(id)}`);
  }
  if (switching) {
    // Another session's messages must not stay on screen (nor count as this one's) while this one loads:
    // a message sent meanwhile belongs here.
    state.messages = [];
    $("messages").replaceChildren();
  }
  state.stopped = false;
  state.attachments = [];
  renderAttachments();
  $("banner").hidden = true;
  $("empty").hidden = true;
  $("empty").textContent = "Choose a session or start a new one.";
  $("session").hidden = false;
  $("panel").hidden = false;
  notice("");
  toggleSidebar(false);
  renderSessions();
  await reload();
  if (seq !== null) {
    const target = $("messages").querySelector(`[data-seq="${seq}"]`);
    if (target) {
      target.classList.add("found");
      target.scrollIntoView({ block: "center" });
    }
  }
}

function isStreamingIn(id) {
  return state.streaming !== null && state.streamingIn === id;
}

async function reload() {
  const id = state.current.id;
  const [info, loaded] = await Promise.all([api.get(id), api.messages(id)]);
  // A reply that started streaming while this loaded is newer than what was loaded (rendering it would wipe the
  // reply from the page mid-stream); the send reloads when the reply ends.
  if (!state.current || state.current.id !== id || isStreamingIn(id)) return;
  state.current = info;
  state.messages = loaded.messages;
  state.version = loaded.version;
  $("banner").hidden = true;
  renderHead();
  await refreshPanel();
  if (!state.current || state.current.id !== id || isStreamingIn(id)) return;
  renderMessages();
}

function renderHead() {
  const s = state.current;
  $("session-title").textContent = sessionTitle(s);
  const parts = [s.model || "default model", `${state.messages.length} messages`];
  if (state.costs) parts.push(usd(state.costs.totals.cost_usd));
  if (s.tags.length) parts.push(s.tags.map((t) => `#${t}`).join(" "));
  $("session-meta").textContent = parts.join(" · ");
}

function usageLine(message) {
  const u = message.usage;
  if (!u) return null;
  const turn = state.costs && state.costs.turns.find((t) => t.seq === message.seq);
  return el("div", { class: "usage" },
    `${message.model || ""} · in ${tokens(u.input_tokens)} · cache write ${tokens(u.cache_creation_input_tokens)}`
    + ` · cache read ${tokens(u.cache_read_input_tokens)} · out ${tokens(u.output_tokens)}`
    + (turn ? ` · ${usd(turn.cost_usd)}` : ""));
}

function isToolResults(message) {
  return Array.isArray(message.content) && message.content.length > 0
    && message.content.every((b) => b.type === "tool_result");
}

function renderMessages() {
  const box = $("messages");
  box.replaceChildren();
  const layout = (state.report && state.report.layout) || { messages: [], breakpoints: [] };
  const states = new Map(layout.messages.map((m) => [m.index, m]));
  const marks = new Map(layout.breakpoints.filter((b) => b.place === "messages").map((b) => [b.index, b]));
  state.messages.forEach((message, index) => {
    const user = message.role === "user";
    const tools = user && isToolResults(message);
    const planned = states.get(index);
    const cut = planned && planned.state !== "sent";
    const actions = el("div", { class: "message-actions" });
    if (user && !tools) {
      actions.append(el("button", { type: "button", class: "small", "aria-label": `Edit message ${index + 1}`,
        onclick: () => editMessage(index) }, "Edit"));
    }
    const next = state.messages[index + 1];
    // Only where a turn ends: a fork cut inside one (before tool results) could not be continued.
    if (!user && (!next || (next.role === "user" && !isToolResults(next)))) {
      actions.append(el("button", { type: "button", class: "small", "aria-label": `Fork after message ${index + 1}`,
        onclick: () => forkAt(index + 1) }, "Fork here"));
    }
    const article = el("article", {
      class: `message ${message.role}${cut ? " not-sent" : ""}`, "data-seq": String(message.seq),
      "data-index": String(index), "aria-label": `${tools ? "Tool results" : user ? "You" : "Claude"}, message ${index + 1}`,
    },
    el("header", {}, el("span", { class: "who", text: tools ? "Tool results" : user ? "You" : "Claude" }),
      cut ? el("span", { class: "badge", text: planned.state === "summarised" ? "summarised" : "not sent" }) : null,
      actions),
    renderContent(message.content),
    user ? null : usageLine(message));
    box.append(article);
    const mark = marks.get(index);
    if (mark) {
      box.append(el("div", { class: "breakpoint", role: "note",
        text: `cache breakpoint (${mark.ttl}): the request up to here is cached` }));
    }
  });
  box.scrollTop = box.scrollHeight;
}

async function refreshPanel() {
  const id = state.current.id;
  try {
    const [report, costs] = await Promise.all([
      state.messages.length ? api.context(id) : Promise.resolve(null),
      api.costs(id),
    ]);
    state.report = report;
    state.costs = costs;
  } catch (error) {
    failed(error);
    return;
  }
  if (state.report) renderContext($("context"), state.report);
  else $("context").replaceChildren(el("p", { class: "muted", text: "Nothing sent yet." }));
  renderCost($("cost-totals"), $("cost-chart"), $("cost-table"), state.costs);
  renderHead();
}

function showPanel(which) {
  state.panel = which;
  for (const name of ["context", "cost"]) {
    $(name).hidden = name !== which;
    $(`tab-${name}`).setAttribute("aria-selected", String(name === which));
  }
}

// -- sending ----------------------------------------------------------------------------------------------

function busy(on) {
  $("send").disabled = on;
  $("undo").disabled = on;
  $("retry").disabled = on;
  $("stop").hidden = !on;
}

async function send(content) {
  const id = state.current.id;
  const firstTurn = state.messages.length === 0;
  const box = $("messages");
  box.append(el("article", { class: "message user pending" }, el("header", {}, el("span", { class: "who", text: "You" })),
    renderContent(content)));
  const reply = el("article", { class: "message assistant streaming", "aria-busy": "true" },
    el("header", {}, el("span", { class: "who", text: "Claude" })), el("div", { class: "content" }));
  box.append(reply);
  box.scrollTop = box.scrollHeight;
  const controller = new AbortController();
  state.streaming = controller;
  state.streamingIn = id;
  state.stopped = false;
  busy(true);
  notice("");
  const acc = new Accumulator();
  let frame = 0;
  const paint = () => {
    frame = 0;
    reply.replaceChild(renderContent(acc.blocks.filter(Boolean)), reply.lastChild);
    box.scrollTop = box.scrollHeight;
  };
  try {
    const response = await api.send(id, { content, stream: true }, controller.signal);
    for await (const { event, data } of events(response)) {
      if (event === "error") throw new ApiError(0, (data.error && data.error.message) || "the reply failed");
      acc.add(data);
      if (!frame) frame = setTimeout(paint, 40); // not requestAnimationFrame: it pauses in a background tab
    }
    clearTimeout(frame);
    paint();
    if (firstTurn && !state.current.title) {
      const title = plainText(content).split("\n")[0].slice(0, 60).trim();
      if (title) await api.update(id, { title });
    }
  } catch (error) {
    if (error.name === "AbortError") {
      state.stopped = true;
      notice("Stopped. The service still finishes this reply and stores it (Undo removes it).");
    } else {
      failed(error);
    }
  } finally {
    state.streaming = null;
    busy(false);
  }
  if (!state.stopped && state.current && state.current.id === id) {
    await reload();
    await loadSessions();
  }
}

async function submit(event) {
  if (event) event.preventDefault();
  if (!state.current || state.streaming) return;
  const text = $("input").value;
  if (!text.trim() && !state.attachments.length) return;
  const content = state.attachments.length
    ? [...state.attachments.map((a) => a.block), ...(text.trim() ? [{ type: "text", text }] : [])]
    : text;
  $("input").value = "";
  state.attachments = [];
  renderAttachments();
  await send(content);
}

async function undo() {
  try {
    const result = await api.undo(state.current.id);
    await reload();
    await loadSessions();
    notice(`Undone: ${result.removed.length} messages removed.`);
    return result.removed;
  } catch (error) {
    failed(error);
    return null;
  }
}

async function retry() {
  const last = state.messages[state.messages.length - 1];
  if (!last || last.role !== "assistant") {
    notice("Nothing to retry: the session does not end with a reply.", true);
    return;
  }
  const removed = await undo();
  if (removed && removed.length) await send(removed[0].content);
}

async function repairSession() {
  try {
    const source = state.current;
    const copy = await api.repair(source.id);
    await loadSessions();
    await openSession(copy.id);
    if (copy.left_out.length) $("input").value = copy.left_out.join("\n\n"); // never answered: ready to send again
    notice(copy.repaired ? `Opened a repaired copy of “${sessionTitle(source)}”; the original is kept as it was.`
      : "This session needs no repair.");
  } catch (error) {
    failed(error);
  }
}

async function forkAt(at, { announce = true } = {}) {
  try {
    const source = state.current;
    const forked = await api.fork(source.id, at);
    const title = `${sessionTitle(source)} (fork)`;
    await api.update(forked.id, { title });
    await loadSessions();
    await openSession(forked.id);
    if (announce) notice(`Forked “${sessionTitle(source)}” after message ${at}.`);
    return forked;
  } catch (error) {
    failed(error);
    return null;
  }
}

function editMessage(index) {
  const article = $("messages").querySelector(`[data-index="${index}"]`);
  const message = state.messages[index];
  const area = el("textarea", { class: "edit", rows: "3", "aria-label": `New text of message ${index + 1}` });
  area.value = plainText(message.content);
  const keep = Array.isArray(message.content) ? message.content.filter((b) => b.type !== "text") : [];
  const form = el("form", { class: "edit-form", onsubmit: async (event) => {
    event.preventDefault();
    const text = area.value;
    if (!text.trim()) return;
    const forked = await forkAt(index, { announce: false });
    if (!forked) return;
    notice(`Edited in a fork: the original session is unchanged.`);
    await send(keep.length ? [...keep, { type: "text", text }] : text);
  } }, area, el("div", { class: "actions" },
    el("button", { type: "button", onclick: () => renderMessages() }, "Cancel"),
    el("button", { type: "submit", class: "primary" }, "Fork and send")));
  article.querySelector(".content").replaceWith(form);
  area.focus();
}

// -- attachments ------------------------------------------------------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function attach(files) {
  for (const file of files) {
    const kind = MEDIA[file.type];
    if (!kind) {
      notice(`${file.name || "That file"} cannot be attached: images (PNG, JPEG, GIF, WebP) and PDFs only.`, true);
      continue;
    }
    const data = await readFile(file);
    const source = { type: "base64", media_type: file.type, data };
    const block = kind === "image" ? { type: "image", source } : { type: "document", source, title: file.name || "document.pdf" };
    state.attachments.push({ name: file.name || (kind === "image" ? "pasted image" : "document.pdf"), block });
  }
  renderAttachments();
}

function renderAttachments() {
  $("attachments").replaceChildren(...state.attachments.map((a, i) => el("span", { class: "chip" }, a.name,
    el("button", { type: "button", class: "small", "aria-label": `Remove ${a.name}`, onclick: () => {
      state.attachments.splice(i, 1);
      renderAttachments();
    } }, "×"))));
}

// -- session actions --------------------------------------------------------------------------------------

async function rename() {
  const title = await ask("Rename session", "", { value: state.current.title || "", label: "Title", ok: "Rename" });
  if (title === null) return;
  try {
    await api.update(state.current.id, { title: title.trim() || null });
    await loadSessions();
    await reload();
  } catch (error) {
    failed(error);
  }
}

async function editTags() {
  const text = await ask("Tags", "Separate tags with commas.", { value: state.current.tags.join(", "),
    label: "Tags", ok: "Save" });
  if (text === null) return;
  const tags = [...new Set(text.split(",").map((t) => t.trim().replace(/^#/, "")).filter(Boolean))];
  try {
    await api.update(state.current.id, { tags });
    await loadSessions();
    await reload();
  } catch (error) {
    failed(error);
  }
}

async function removeSession() {
  const s = state.current;
  const yes = await ask("Delete session", `Delete “${sessionTitle(s)}” and all its messages? This cannot be undone.`,
    { ok: "Delete", danger: true });
  if (!yes) return;
  try {
    await api.remove(s.id);
    state.current = null;
    history.replaceState(null, "", "#");
    $("session").hidden = true;
    $("panel").hidden = true;
    $("empty").hidden = false;
    await loadSessions();
  } catch (error) {
    failed(error);
  }
}

async function download(format) {
  const s = state.current;
  try {
    const text = await api.exportText(s.id, format);
    const type = format === "markdown" ? "text/markdown" : "application/x-ndjson";
    const url = URL.createObjectURL(new Blob([text], { type }));
    const link = el("a", { href: url, download: `${s.id}.${format === "markdown" ? "md" : "jsonl"}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (error) {
    failed(error);
  }
}

// -- changes made elsewhere -------------------------------------------------------------------------------

async function poll() {
  if (!state.current || state.streaming || document.visibilityState !== "visible" || $("app").hidden) return;
  const id = state.current.id;
  try {
    const info = await api.get(id);
    if (!state.current || state.current.id !== id || state.streaming) return;
    if (info.version !== state.version) {
      if (state.stopped) {
        state.stopped = false;
        await reload();
        await loadSessions();
      } else {
        $("banner-text").textContent = "This session was changed in another tab or by another client.";
        $("banner").hidden = false;
      }
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $("banner-text").textContent = "This session was deleted in another tab or by another client.";
      $("banner").hidden = false;
    }
  }
}

// -- wiring -----------------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signOut());
  $("menu").addEventListener("click", () => toggleSidebar());
  $("new-session").addEventListener("click", newSession);
  $("search").addEventListener("input", searchLater);
  $("tag-filter").addEventListener("change", () => loadSessions().catch(failed));
  $("more-sessions").addEventListener("click", () => loadSessions(true).catch(failed));
  $("composer").addEventListener("submit", submit);
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  $("input").addEventListener("paste", (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (files.length) {
      event.preventDefault();
      attach(files).catch(failed);
    }
  });
  const drop = $("session");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dropping");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dropping"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dropping");
    attach([...event.dataTransfer.files]).catch(failed);
  });
  $("file").addEventListener("change", (event) => {
    attach([...event.target.files]).catch(failed);
    event.target.value = "";
  });
  $("stop").addEventListener("click", () => state.streaming && state.streaming.abort());
  $("undo").addEventListener("click", undo);
  $("retry").addEventListener("click", retry);
  $("rename").addEventListener("click", rename);
  $("tags").addEventListener("click", editTags);
  $("delete").addEventListener("click", removeSession);
  $("banner-reload").addEventListener("click", () => reload().catch(failed));
  $("tab-context").addEventListener("click", () => showPanel("context"));
  $("tab-cost").addEventListener("click", () => showPanel("cost"));
  $("export-jsonl").addEventListener("click", () => download("jsonl"));
  $("export-md").addEventListener("click", () => download("markdown"));
  window.addEventListener("hashchange", () => {
    const id = new URLSearchParams(location.hash.slice(1)).get("session");
    if (id && (!state.current || state.current.id !== id)) openSession(id);
  });
  setInterval(poll, POLL_MS);
}

async function start() {
  wire();
  if (auth.get()) {
    try {
      await enter();
      return;
    } catch (error) {
      auth.clear();
      showSignin(error instanceof ApiError && error.status === 401 ? "Your key was refused." : error.message);
      return;
    }
  }
  try {
    await api.list({ limit: "1" }); // a service started without authentication answers without a key
    await enter();
  } catch {
    showSignin();
  }
}

start();
