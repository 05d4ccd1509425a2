// The local demo's agent console: drives the admin and platform APIs of the local host so a
// person can walk every path of contract §2.2 while the customer's browser (the iframe on the
// left) shows what the reconnect widget does. Dev only; all text is set with textContent.
import { formatTimeLeft } from "./reconnect.js";

const WIDGET_ID = "demo";
const AGENT_ID = "agent-1";
const STATE_KEY = "chatReconnectDemo";
const CHANNEL_NAME = "chat-reconnect-demo";
const POLL_MS = 1000;
const MAX_CONVERSATIONS = 10;
const MAX_LOG = 60;
const MAX_EVENTS = 100;
const EVENT_TYPE_PREFIX = "chatreconnect.conversation.";

const $ = (id) => document.getElementById(id);
const frame = $("customer-frame");

class ApiError extends Error {
  constructor(status, data) {
    super((data && (data.detail || data.title)) || `HTTP ${status}`);
    this.status = status;
    this.data = data;
  }
}

function loadDemoState() {
  const defaults = {
    widgetId: WIDGET_ID,
    authenticated: false,
    customer: "alice",
    tokenMode: "valid",
    conversationId: null,
    conversations: [],
  };
  try {
    const stored = JSON.parse(window.localStorage.getItem(STATE_KEY) || "{}");
    return { ...defaults, ...(stored && typeof stored === "object" ? stored : {}) };
  } catch {
    return defaults;
  }
}

const demo = loadDemoState();
let settings = null; // the widget's saved settings
let current = null; // the watched conversation, as last read
let polling = false;
let eventCursor = 0; // the last event the console shows (the demo's /dev/events cursor)
let eventsPolling = false;

function persist() {
  window.localStorage.setItem(STATE_KEY, JSON.stringify(demo));
}

async function api(path, { method = "GET", body, contentType = "application/json" } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = contentType;
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path.startsWith("/api/") ? path : `/api${path}`, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function say(message, { error = false } = {}) {
  const status = $("console-status");
  status.textContent = message;
  status.classList.toggle("error", error);
  log(message);
}

function log(message) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, ` ${message}`);
  const list = $("log");
  list.prepend(item);
  while (list.children.length > MAX_LOG) list.lastElementChild.remove();
}

function failed(action, error) {
  const reason = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error);
  say(`${action} failed (${reason})`, { error: true });
}

// ------------------------------------------------------------------ customer's browser

/** Navigate the customer's browser; resolves once the page (and its widget) has settled. */
async function showCustomer(url) {
  await new Promise((resolve) => {
    frame.addEventListener("load", () => resolve(), { once: true });
    frame.src = url;
  });
  const widget = frame.contentWindow && frame.contentWindow.chatReconnectWidget;
  if (widget && widget.ready) await widget.ready;
}

frame.addEventListener("load", () => {
  try {
    $("address").value = frame.contentWindow.location.href;
  } catch {
    $("address").value = frame.src;
  }
});

$("open-portal").addEventListener("click", () => showCustomer("portal.html"));
$("reload-customer").addEventListener("click", () => {
  if (frame.src) frame.contentWindow.location.reload();
});

// --------------------------------------------------------------------- widget settings

async function devIssuer() {
  const response = await fetch("/dev/issuer", { cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, null);
  return response.json();
}

async function findWidget() {
  let next = "/manage/widgets?top=1000";
  while (next) {
    const page = await api(next);
    const found = page.value.find((widget) => widget.widgetId === WIDGET_ID);
    if (found) return found;
    next = page.nextLink;
  }
  return null;
}

function describe(saved) {
  const parts = [
    saved.reconnectEnabled ? "reconnect on" : "reconnect off",
    `${saved.timeLimitMinutes} min`,
    saved.redirectUrl ? "redirect on" : "no redirect",
    saved.authentication ? "authenticated" : "anonymous",
  ];
  return parts.join(", ");
}

function fillForm(saved) {
  $("reconnect-enabled").checked = saved.reconnectEnabled;
  $("time-limit").value = String(saved.timeLimitMinutes);
  $("redirect-enabled").checked = Boolean(saved.redirectUrl);
  $("authenticated").checked = Boolean(saved.authentication);
  $("settings-summary").textContent = `Saved: ${describe(saved)}`;
}

async function settingsBody(authenticated) {
  const body = {
    widgetId: WIDGET_ID,
    reconnectEnabled: $("reconnect-enabled").checked,
    timeLimitMinutes: Number($("time-limit").value),
    portalUrl: `${window.location.origin}/portal.html`,
    redirectUrl: $("redirect-enabled").checked ? `${window.location.origin}/expired.html` : "",
    authentication: null,
  };
  if (authenticated) {
    const issuer = await devIssuer();
    body.authentication = {
      issuer: issuer.issuer,
      audience: issuer.audience,
      publicKeys: [{ kid: issuer.kid, pem: issuer.pem }],
    };
  }
  return body;
}

function rememberSignIn() {
  demo.authenticated = Boolean(settings && settings.authentication);
  demo.customer = $("customer").value.trim() || "alice";
  demo.tokenMode = $("token-mode").value;
  persist();
}

async function saveSettings() {
  const body = await settingsBody($("authenticated").checked);
  settings = await api(`/manage/widgets/${WIDGET_ID}`, { method: "PUT", body });
  fillForm(settings);
  rememberSignIn();
  renderConversation();
  return settings;
}

$("settings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const saved = await saveSettings();
    say(`Settings saved: ${describe(saved)}`);
  } catch (error) {
    failed("Saving the settings", error);
  }
});

for (const id of ["customer", "token-mode"]) {
  $(id).addEventListener("change", () => {
    rememberSignIn();
    say(`The portal now signs in as ${demo.customer} with a ${demo.tokenMode} token`);
  });
}

async function loadSettings() {
  let found = await findWidget();
  if (!found) {
    $("reconnect-enabled").checked = true;
    $("time-limit").value = "1";
    found = await saveSettings();
    say(`Created the demo widget: ${describe(found)}`);
    return;
  }
  settings = found;
  fillForm(found);
  if (found.authentication) {
    // The dev issuer's key lives in the host's memory: after a restart, re-register it.
    const issuer = await devIssuer();
    const current = found.authentication.publicKeys.some(
      (key) => key.kid === issuer.kid && key.pem === issuer.pem,
    );
    if (!current) {
      await saveSettings();
      say("Updated the widget's public key to this host's dev token issuer");
    }
  }
  rememberSignIn();
}

// ------------------------------------------------------------------------ conversation

const channel = "BroadcastChannel" in window ? new BroadcastChannel(CHANNEL_NAME) : null;

function newConversationId() {
  const random = Math.random().toString(36).slice(2, 6);
  return `demo-${Date.now().toString(36)}${random}`;
}

function renderSelect() {
  const select = $("conversation-select");
  select.replaceChildren(
    ...demo.conversations.map((id) => {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = id;
      option.selected = id === demo.conversationId;
      return option;
    }),
  );
  select.disabled = demo.conversations.length === 0;
}

async function startConversation({ fromCustomer = false } = {}) {
  // A chat the console starts comes from a customer who just opened the portal.
  if (!fromCustomer) await showCustomer("portal.html");
  const id = newConversationId();
  const body = { widgetId: WIDGET_ID, agentId: AGENT_ID };
  if (settings && settings.authentication) body.customerId = demo.customer;
  const conversation = await api(`/conversations/${id}`, { method: "PUT", body });
  demo.conversations = [id, ...demo.conversations].slice(0, MAX_CONVERSATIONS);
  demo.conversationId = id;
  persist();
  renderSelect();
  current = conversation;
  renderConversation();
  const who = body.customerId ? ` for ${body.customerId}` : "";
  say(`Started ${id}${who}: ${conversation.state}, agent ${conversation.agentId}`);
  if (channel) {
    channel.postMessage({
      type: "conversation-started",
      widgetId: WIDGET_ID,
      conversationId: id,
      agentId: AGENT_ID,
    });
  }
  await poll();
}

$("start").addEventListener("click", () =>
  startConversation().catch((error) => failed("Starting a conversation", error)),
);

$("conversation-select").addEventListener("change", (event) => {
  demo.conversationId = event.target.value;
  persist();
  current = null;
  renderConversation();
  poll();
});

const AFTER_EVENT = {
  customer_disconnected: "closed.html",
  customer_ended: "closed.html",
};

async function sendEvent(type) {
  const body = { type, eventId: newConversationId() };
  if (type === "agent_assigned") body.agentId = AGENT_ID;
  const before = current;
  current = await api(`/conversations/${demo.conversationId}/events`, { method: "POST", body });
  renderConversation();
  const reason = current.endReason ? ` (${current.endReason})` : "";
  const away = current.customerConnected ? "" : ", customer not connected";
  say(`${type}: ${before ? before.state : "?"} → ${current.state}${reason}${away}`);
  if (AFTER_EVENT[type]) await showCustomer(AFTER_EVENT[type]);
  await poll();
}

for (const button of document.querySelectorAll("button[data-event]")) {
  button.addEventListener("click", () =>
    sendEvent(button.dataset.event).catch((error) => failed(button.dataset.event, error)),
  );
}

// ------------------------------------------------------------------------ reconnect link

$("copy-link").addEventListener("click", async () => {
  const input = $("reconnect-url");
  try {
    await navigator.clipboard.writeText(input.value);
    say("Reconnect link copied to the clipboard");
  } catch {
    input.focus();
    input.select();
    say("The clipboard is not available here: the link is selected, press Ctrl+C");
  }
});

$("open-link").addEventListener("click", () => {
  if (current && current.reconnectUrl) {
    log("The customer opens the reconnect link");
    showCustomer(current.reconnectUrl);
  }
});

$("revoke-link").addEventListener("click", async () => {
  try {
    const answer = await api(`/conversations/${demo.conversationId}/reconnect-link/revoke`, {
      method: "POST",
    });
    say(answer.reconnectUrl ? "Link revoked: a new link replaces it" : "Link revoked");
    await poll();
  } catch (error) {
    failed("Revoking the link", error);
  }
});

$("send-quick-reply").addEventListener("click", async () => {
  try {
    const answer = await api(`/conversations/${demo.conversationId}/quick-reply`, {
      method: "POST",
      body: { text: $("quick-reply-text").value },
    });
    const output = $("quick-reply-output");
    output.textContent = answer.text;
    output.hidden = false;
    say("Quick reply sent to the customer");
  } catch (error) {
    failed("The quick reply", error);
  }
});

// ------------------------------------------------------------------------- live state

function timeLeft(deadline) {
  const seconds = Math.floor((Date.parse(deadline) - Date.now()) / 1000);
  if (seconds <= 0) return "passed: the timer ends it within seconds";
  return `in ${formatTimeLeft(deadline)}`;
}

function formatTime(value) {
  return value ? new Date(value).toLocaleTimeString() : "—";
}

function setField(name, text) {
  const node = document.querySelector(`[data-field="${name}"]`);
  node.textContent = text;
  return node;
}

function enable(id, on) {
  const node = $(id);
  node.disabled = !on;
}

function renderConversation(capacity) {
  const c = current;
  const state = c ? c.state : null;
  const connected = Boolean(c && c.customerConnected);
  const hasConversation = Boolean(demo.conversationId && c);
  setField("conversationId", c ? c.conversationId : "— (start one)");
  const badge = setField("state", state || "—");
  badge.className = `badge ${state || ""}`.trim();
  setField("agentId", c ? c.agentId || "none" : "—");
  setField("customerConnected", c ? (connected ? "yes" : "no") : "—");
  setField("disconnectedAt", c ? formatTime(c.disconnectedAt) : "—");
  setField(
    "reconnectDeadline",
    c && c.reconnectDeadline
      ? `${formatTime(c.reconnectDeadline)} (${timeLeft(c.reconnectDeadline)})`
      : "—",
  );
  setField("endReason", c ? c.endReason || "—" : "—");
  if (capacity) {
    const ids = capacity.conversations.map((held) => held.conversationId).join(", ");
    setField("capacity", `${capacity.held}${ids ? ` (${ids})` : ""}`);
  }
  enable("assign", state === "open");
  enable("disconnect", connected && (state === "active" || state === "open"));
  enable("customer-end", state === "open" || state === "active");
  enable("agent-end", state === "active");
  enable("agent-close", state === "active" || state === "wrap_up");
  const url = c && c.reconnectUrl;
  $("reconnect-url").value = url || (c ? "(reconnect is off for this widget)" : "");
  enable("copy-link", Boolean(url));
  enable("open-link", Boolean(url));
  enable("send-quick-reply", Boolean(url));
  enable("revoke-link", hasConversation);
  const tab = $("open-link-tab");
  if (url) {
    tab.href = url;
    tab.removeAttribute("aria-disabled");
  } else {
    tab.removeAttribute("href");
    tab.setAttribute("aria-disabled", "true");
  }
}

async function poll() {
  if (polling) return;
  polling = true;
  try {
    let capacity = null;
    if (demo.conversationId) {
      const watched = demo.conversationId;
      const before = current;
      const conversation = await api(`/conversations/${watched}`);
      if (watched === demo.conversationId) {
        current = conversation;
        if (before && before.conversationId === watched && before.state !== current.state) {
          const reason = current.endReason ? ` (${current.endReason})` : "";
          log(`${watched}: ${before.state} → ${current.state}${reason}`);
        }
      }
    }
    capacity = await api(`/agents/${AGENT_ID}/capacity`);
    renderConversation(capacity);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && demo.conversationId) {
      log(`${demo.conversationId} no longer exists; pick or start another conversation`);
      demo.conversations = demo.conversations.filter((id) => id !== demo.conversationId);
      demo.conversationId = demo.conversations[0] || null;
      current = null;
      persist();
      renderSelect();
    } else {
      $("console-status").textContent = `Polling failed (${error.message})`;
    }
  } finally {
    polling = false;
  }
}

// ------------------------------------------------------------------ integration events

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** One row of the events table: what the platform heard, in the order it arrived. */
function eventRow(item) {
  const row = document.createElement("tr");
  row.dataset.cursor = String(item.cursor);
  const event = item.event;
  if (!event) {
    row.className = "unreadable";
    row.append(cell("—"), cell(formatTime(item.receivedAt)), cell(`unreadable: ${item.error}`));
    return row;
  }
  const data = event.data || {};
  const type = String(event.type).startsWith(EVENT_TYPE_PREFIX)
    ? String(event.type).slice(EVENT_TYPE_PREFIX.length)
    : String(event.type);
  const subject = String(event.subject || "");
  const conversationId = data.conversationId || subject.replace(/^conversations\//, "");
  const state = data.previousState ? `${data.previousState} → ${data.state}` : String(data.state);
  row.dataset.type = type;
  row.dataset.conversation = conversationId;
  const sequence = event.sequence ? String(Number(event.sequence)) : "—";
  const released = data.capacityReleased || "";
  const what = cell(type);
  const via = document.createElement("span");
  via.className = "via";
  via.textContent = `via ${data.via || "?"}`;
  what.append(document.createElement("br"), via);
  row.append(
    cell(sequence),
    cell(event.time ? new Date(event.time).toLocaleTimeString([], { hour12: false }) : "—"),
    what,
    cell(conversationId),
    cell(state),
    cell(released || "—", released ? "released" : ""),
  );
  return row;
}

async function pollEvents() {
  if (eventsPolling) return;
  eventsPolling = true;
  const status = $("events-status");
  try {
    const response = await fetch(`/dev/events?after=${eventCursor}`, { cache: "no-store" });
    if (!response.ok) throw new ApiError(response.status, null);
    const feed = await response.json();
    $("events-queue").textContent = feed.queue || "events";
    const body = $("events");
    const scroller = body.closest(".events-scroll");
    const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 4;
    for (const item of feed.events) {
      if (item.cursor <= eventCursor) continue;
      body.append(eventRow(item));
      eventCursor = item.cursor;
      if (item.event && item.event.data && item.event.data.capacityReleased) {
        const data = item.event.data;
        log(`Event: ${data.conversationId} released ${data.capacityReleased}'s capacity`);
      }
    }
    while (body.children.length > MAX_EVENTS) body.firstElementChild.remove();
    for (const row of body.children) {
      row.classList.toggle("watched", row.dataset.conversation === demo.conversationId);
    }
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
    const count = body.children.length;
    if (!feed.queue) status.textContent = "Events are off (EVENTS_QUEUE is empty).";
    else if (feed.error) status.textContent = `${feed.error}; retrying every second.`;
    else status.textContent = count ? `${count} event${count === 1 ? "" : "s"} received.` : "No events yet.";
  } catch (error) {
    status.textContent = `The event stream is not available (${error.message}).`;
  } finally {
    eventsPolling = false;
  }
}

// ------------------------------------------------------------ messages from the portal

async function onCustomerMessage(message) {
  if (!message || message.widgetId !== WIDGET_ID) return;
  if (message.type === "continued" && message.result) {
    const { conversationId, sameAgent, state } = message.result;
    say(`The customer continued ${conversationId} (${state}, same agent: ${sameAgent ? "yes" : "no"})`);
    await poll();
  } else if (message.type === "start-new") {
    if (message.declinedConversationId) {
      try {
        const old = await api(`/conversations/${message.declinedConversationId}`);
        log(`The customer declined ${old.conversationId}: ${old.state} (${old.endReason || "—"})`);
      } catch (error) {
        failed("Reading the declined conversation", error);
      }
    }
    log("The customer asked for a new conversation");
    await startConversation({ fromCustomer: true });
  }
}

if (channel) {
  channel.addEventListener("message", (event) =>
    onCustomerMessage(event.data).catch((error) => failed("Handling the customer", error)),
  );
}

// ------------------------------------------------------------------------------ start

async function init() {
  $("widget-id").textContent = WIDGET_ID;
  $("agent-name").textContent = AGENT_ID;
  $("customer").value = demo.customer;
  $("token-mode").value = demo.tokenMode;
  renderSelect();
  renderConversation();
  try {
    await loadSettings();
  } catch (error) {
    failed("Loading the demo widget", error);
  }
  await showCustomer("portal.html");
  await Promise.all([poll(), pollEvents()]);
  setInterval(poll, POLL_MS);
  setInterval(pollEvents, POLL_MS);
  document.body.dataset.ready = "true";
}

init();
