// Chat Reconnect — reference widget (dependency-free ES module).
//
// A portal page includes it and calls createReconnectWidget(). On load the widget
//   * follows a reconnect link (`oc.reconnectid` in the page URL): continues the previous
//     conversation when it is still available, sends the customer to the widget's
//     redirect URL when it is not and one is set, and otherwise offers a new conversation;
//   * on an authenticated widget (the page passes getAuthenticationToken, as Omnichannel's
//     `auth.getAuthenticationToken`), asks for the customer's previous session and shows the
//     pane "Previous session detected" with "Continue conversation" / "Start new conversation".
// Every text is set with textContent (never innerHTML), errors appear in a role="alert"
// element, and state changes are announced through an aria-live="polite" region.

export const RECONNECT_PARAM = "oc.reconnectid";
// No reconnect ID the service issues is longer (ids are at most 128 characters, plus
// epoch and MAC); a longer one is unavailable whatever it holds.
export const MAX_LINK_LENGTH = 256;
const TOKEN_TIMEOUT_MS = 15000;
let instances = 0;

const MESSAGES = {
  network: "We can't reach the chat service. Check your connection and try again.",
  unauthorized: "We couldn't confirm your sign-in. Please sign in again, then try again.",
  token: "We couldn't get your sign-in details. Please sign in again, then try again.",
  notFound: "This chat isn't available: the widget is not set up.",
  unavailable: "The chat service is busy right now. Please try again in a moment.",
  unexpected: "Something went wrong. Please try again.",
};

/** An error the widget shows to the customer; `kind` selects the message. */
class WidgetError extends Error {
  constructor(kind, status = null) {
    super(MESSAGES[kind] || MESSAGES.unexpected);
    this.name = "WidgetError";
    this.kind = kind;
    this.status = status;
  }
}

function errorForStatus(status) {
  if (status === 401) return new WidgetError("unauthorized", status);
  if (status === 404) return new WidgetError("notFound", status);
  if (status === 503 || status === 429) return new WidgetError("unavailable", status);
  return new WidgetError("unexpected", status);
}

/** The reconnect ID of the page URL, or null. */
export function readReconnectId(href) {
  const value = new URL(href).searchParams.get(RECONNECT_PARAM);
  return value && value.trim() ? value.trim() : null;
}

/** The page URL without `oc.reconnectid`, or null when it has none. */
export function withoutReconnectId(href) {
  const url = new URL(href);
  if (!url.searchParams.has(RECONNECT_PARAM)) return null;
  url.searchParams.delete(RECONNECT_PARAM);
  return url.href;
}

/**
 * The path segment for a reconnect ID: percent-encoded, so that "/", "?" or "#" in a
 * hand-edited link stay inside the segment and the service answers "unavailable". Two kinds
 * of string cannot travel as a segment and are never a link, so an equally unusable one is
 * sent instead: a dot segment ("." or "..", which URL parsers remove from a path) goes
 * encoded twice, and an ID longer than any link is cut to MAX_LINK_LENGTH (Azure refuses
 * very long URLs before the app sees them).
 */
export function linkSegment(reconnectId) {
  const codePoints = Array.from(reconnectId);
  const id = codePoints.length > MAX_LINK_LENGTH ? codePoints.slice(0, MAX_LINK_LENGTH).join("") : reconnectId;
  const encoded = encodeURIComponent(id);
  return encoded === "." || encoded === ".." ? encoded.replaceAll(".", "%252E") : encoded;
}

/** "m:ss" (or "h:mm:ss") until `expiresAt`, never negative. */
export function formatTimeLeft(expiresAt, now = Date.now()) {
  const total = Math.max(0, Math.floor((Date.parse(expiresAt) - now) / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0
    ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}`
    : `${minutes}:${seconds}`;
}

/** The token from a page's function: it may return it, return a promise, or call back. */
function obtainToken(getAuthenticationToken) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => finish(reject, new WidgetError("token")), TOKEN_TIMEOUT_MS);
    function finish(settle, value) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      settle(value);
    }
    const accept = (token) =>
      typeof token === "string" && token.trim()
        ? finish(resolve, token.trim())
        : finish(reject, new WidgetError("token"));
    try {
      const result = getAuthenticationToken(accept);
      if (result && typeof result.then === "function") {
        result.then(accept, () => finish(reject, new WidgetError("token")));
      } else if (result !== undefined) {
        accept(result);
      }
    } catch {
      finish(reject, new WidgetError("token"));
    }
  });
}

/** Only http(s) destinations are followed, whatever the server sends. */
function safeUrl(value, base) {
  try {
    const url = new URL(value, base);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function element(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

/**
 * Mount the reconnect widget in `container` and start it.
 *
 * options: apiBase ("/api"), widgetId, container (element or selector),
 * getAuthenticationToken?(callback) -> token | Promise<token>, onContinue?(result),
 * onStartNew?({declinedConversationId}) -> any | Promise, title ("Chat with us").
 * Returns { ready, start(), showConversation(info), destroy(), state }.
 */
export function createReconnectWidget(options = {}) {
  const {
    apiBase = "/api",
    widgetId,
    getAuthenticationToken,
    onContinue,
    onStartNew,
    title = "Chat with us",
  } = options;
  const container =
    typeof options.container === "string"
      ? document.querySelector(options.container)
      : options.container;
  if (!container) throw new TypeError("createReconnectWidget: container not found");
  if (typeof widgetId !== "string" || !widgetId) {
    throw new TypeError("createReconnectWidget: widgetId is required");
  }
  const fetchImpl = options.fetch || window.fetch.bind(window);
  const base = String(apiBase).replace(/\/+$/, "");
  const widgetPath = `/widgets/${encodeURIComponent(widgetId)}`;
  const id = `crw-${++instances}`;
  // A reconnect ID is a credential (contract §2.3): read it once, then take it out of the address
  // bar and the session history so it is not bookmarked, shared or shown over a shoulder.
  const linkId = readReconnectId(window.location.href);
  const cleanUrl = withoutReconnectId(window.location.href);
  if (cleanUrl !== null) window.history.replaceState(window.history.state, "", cleanUrl);

  const live = element("div", {
    className: "crw-visually-hidden",
    attrs: { "aria-live": "polite", "aria-atomic": "true" },
  });
  const alert = element("div", { className: "crw-alert", attrs: { role: "alert" } });
  const body = element("div", { className: "crw-body" });
  const root = element(
    "section",
    { className: "crw", attrs: { "aria-labelledby": `${id}-title`, "data-state": "idle" } },
    [element("h2", { className: "crw-title", text: title, attrs: { id: `${id}-title` } }), alert, body, live],
  );
  container.replaceChildren(root);

  let state = "idle";
  let countdown = null;
  let generation = 0; // a newer run makes an older one's late answers harmless
  let panes = 0;

  function setState(next, announcement) {
    state = next;
    root.dataset.state = next;
    if (announcement) live.textContent = announcement;
    container.dispatchEvent(new CustomEvent("reconnect:state", { detail: { state: next } }));
  }

  function stopCountdown() {
    if (countdown !== null) clearInterval(countdown);
    countdown = null;
  }

  function show(view, { focus = false } = {}) {
    stopCountdown();
    body.replaceChildren(view);
    if (focus) {
      const target = view.matches("[tabindex]") ? view : view.querySelector("[tabindex='-1']");
      (target || view).focus({ preventScroll: false });
    }
  }

  function clearAlert() {
    alert.textContent = "";
  }

  function pane(heading, { className = "", focusable = true } = {}, children = []) {
    const headingId = `${id}-h${++panes}`;
    const attrs = { "aria-labelledby": headingId, role: "region" };
    if (focusable) attrs.tabindex = "-1";
    return element("div", { className: `crw-pane ${className}`.trim(), attrs }, [
      element("h3", { className: "crw-heading", text: heading, attrs: { id: headingId } }),
      ...children,
    ]);
  }

  function button(label, onClick, { primary = false } = {}) {
    const node = element("button", {
      className: primary ? "crw-button crw-primary" : "crw-button",
      text: label,
      attrs: { type: "button" },
    });
    node.addEventListener("click", onClick);
    return node;
  }

  async function call(method, path, token) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetchImpl(base + path, {
        method,
        headers,
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch {
      throw new WidgetError("network");
    }
    let data = null;
    if (response.status !== 204) {
      try {
        const text = await response.text();
        data = text ? JSON.parse(text) : null;
      } catch {
        data = null;
      }
    }
    return { status: response.status, data };
  }

  function fail(error, retry) {
    const shown = error instanceof WidgetError ? error : new WidgetError("unexpected");
    alert.textContent = shown.message;
    const again = button("Try again", () => retry(), { primary: true });
    show(pane("We couldn't load your chat", { focusable: false }, [again]));
    setState("error");
  }

  function showLoading(text) {
    show(element("p", { className: "crw-muted", text, attrs: { "aria-busy": "true" } }));
    setState("loading");
  }

  function redirect(url) {
    const target = safeUrl(url, window.location.href);
    if (!target) return showNewOffer("Your previous conversation can no longer be continued.");
    show(element("p", { className: "crw-muted", text: "Your previous conversation has ended. Redirecting…" }));
    setState("redirecting", "Your previous conversation has ended. Redirecting.");
    window.location.assign(target);
    return undefined;
  }

  function showReconnected(result) {
    const lines = [];
    if (result.sameAgent && result.agentId) {
      lines.push(element("p", { text: "You're back with your agent:" }));
      lines.push(element("p", { className: "crw-agent", text: result.agentId }));
    } else {
      lines.push(
        element("p", {
          text: "Your previous agent is no longer available. The next available agent will join you shortly.",
        }),
      );
    }
    lines.push(
      element("p", { className: "crw-muted", text: `Conversation ${result.conversationId}` }),
    );
    show(pane("Reconnected to your conversation", { className: "crw-success" }, lines), {
      focus: true,
    });
    setState("reconnected", "Reconnected to your conversation.");
  }

  function showConversation(info = {}) {
    clearAlert();
    const lines = [];
    if (info.agentId) {
      lines.push(element("p", { text: "You're chatting with:" }));
      lines.push(element("p", { className: "crw-agent", text: String(info.agentId) }));
    } else {
      lines.push(element("p", { text: "An agent will be with you shortly." }));
    }
    if (info.conversationId) {
      lines.push(
        element("p", { className: "crw-muted", text: `Conversation ${info.conversationId}` }),
      );
    }
    show(pane("Conversation started", { className: "crw-success", focusable: false }, lines));
    setState("chatting", "Conversation started.");
  }

  async function startNew(declinedConversationId = null) {
    clearAlert();
    show(element("p", { className: "crw-muted", text: "Starting a new conversation…" }));
    setState("new-started", "Starting a new conversation.");
    if (typeof onStartNew === "function") {
      try {
        await onStartNew({ declinedConversationId });
      } catch {
        // The page owns starting a chat; its failure is its to report.
      }
    }
  }

  function showNewOffer(reason) {
    const children = [];
    if (reason) children.push(element("p", { text: reason }));
    else children.push(element("p", { text: "Our agents are here to help." }));
    children.push(button("Start a new conversation", () => startNew(), { primary: true }));
    const heading = reason ? "Start a new conversation" : "Need help?";
    show(pane(heading, {}, children), { focus: Boolean(reason) });
    setState("new-offer", reason || "You can start a new conversation.");
  }

  async function continueWith(reconnectId, token, run) {
    showLoading("Reconnecting to your conversation…");
    const answer = await call(
      "POST",
      `${widgetPath}/reconnect/${linkSegment(reconnectId)}`,
      token,
    );
    if (run !== generation) return;
    if (answer.status === 200 && answer.data) {
      showReconnected(answer.data);
      if (typeof onContinue === "function") onContinue(answer.data);
      return;
    }
    if (answer.status === 410) {
      const redirectUrl = answer.data && answer.data.redirectUrl;
      if (redirectUrl) return void redirect(redirectUrl);
      return void showNewOffer("Your previous conversation can no longer be continued.");
    }
    throw errorForStatus(answer.status);
  }

  async function decline(found, token, run) {
    showLoading("Ending your previous conversation…");
    const answer = await call(
      "POST",
      `${widgetPath}/reconnect/${linkSegment(found.reconnectId)}/decline`,
      token,
    );
    if (run !== generation) return;
    if (answer.status !== 204 && answer.status !== 200) throw errorForStatus(answer.status);
    await startNew(found.conversationId);
  }

  function showPrompt(found, token, run) {
    const timeLeft = element("span", { className: "crw-time" });
    const update = () => {
      timeLeft.textContent = found.expiresAt ? formatTimeLeft(found.expiresAt) : "—";
    };
    const guarded = (action) => () => {
      clearAlert();
      action().catch((error) => fail(error, guarded(action)));
    };
    const children = [
      element("p", { text: "You have a conversation that was interrupted. Would you like to continue it?" }),
    ];
    if (found.expiresAt) {
      children.push(
        element("p", { className: "crw-muted" }, ["Time left to reconnect: ", timeLeft]),
      );
    }
    children.push(
      element("div", { className: "crw-actions" }, [
        button("Continue conversation", guarded(() => continueWith(found.reconnectId, token, run)), {
          primary: true,
        }),
        button("Start new conversation", guarded(() => decline(found, token, run))),
      ]),
    );
    show(pane("Previous session detected", { className: "crw-prompt" }, children), { focus: true });
    if (found.expiresAt) {
      update();
      countdown = setInterval(update, 1000);
    }
    setState("prompt", "Previous session detected. Continue the conversation or start a new one.");
  }

  async function run(current) {
    let token = null;
    if (typeof getAuthenticationToken === "function") {
      token = await obtainToken(getAuthenticationToken);
      if (current !== generation) return;
    }
    const reconnectId = linkId;
    if (reconnectId) {
      const answer = await call("GET", `${widgetPath}/reconnect/${linkSegment(reconnectId)}`, token);
      if (current !== generation) return;
      if (answer.status !== 200 || !answer.data) throw errorForStatus(answer.status);
      const context = answer.data;
      if (context.isReconnectAvailable) {
        return continueWith(context.reconnectId || reconnectId, token, current);
      }
      if (context.redirectUrl) return void redirect(context.redirectUrl);
      return void showNewOffer("Your previous conversation can no longer be continued.");
    }
    if (token) {
      const answer = await call("GET", `${widgetPath}/reconnectable`, token);
      if (current !== generation) return;
      if (answer.status === 200 && answer.data) return void showPrompt(answer.data, token, current);
      if (answer.status === 204) return void showNewOffer();
      throw errorForStatus(answer.status);
    }
    showNewOffer();
  }

  function start() {
    const current = ++generation;
    clearAlert();
    showLoading("Checking for a previous conversation…");
    return run(current).catch((error) => {
      if (current === generation) fail(error, start);
    });
  }

  const ready = start();
  return {
    ready,
    start,
    showConversation,
    get state() {
      return state;
    },
    destroy() {
      generation += 1;
      stopCountdown();
      root.remove();
    },
  };
}
