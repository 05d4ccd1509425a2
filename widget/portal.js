// The demo portal: a customer-facing page that hosts the reconnect widget.
//
// Its settings come from the URL (?widget=<id>&customer=<sub>&token=valid|tampered) or,
// when absent, from what the demo's agent console stored (localStorage). A signed-in
// customer gets tokens from the local host's dev-only issuer (/dev/token), as a real
// portal would from its identity provider. A BroadcastChannel tells the agent console
// (in another frame or tab) when the customer continues or asks for a new conversation.
import { createReconnectWidget } from "./reconnect.js";

const STATE_KEY = "chatReconnectDemo";
const CHANNEL_NAME = "chat-reconnect-demo";

function storedState() {
  try {
    const parsed = JSON.parse(window.localStorage.getItem(STATE_KEY) || "{}");
    return parsed && typeof parsed === "object" ? parsed : {};
  } catch {
    return {};
  }
}

const params = new URLSearchParams(window.location.search);
const stored = storedState();
const widgetId = params.get("widget") || stored.widgetId || "demo";
const customer = params.has("customer")
  ? params.get("customer").trim()
  : stored.authenticated
    ? String(stored.customer || "").trim()
    : "";
const tokenMode = params.get("token") || stored.tokenMode || "valid";

document.getElementById("signed-in").textContent = customer
  ? `Signed in as ${customer}`
  : "Not signed in";

/** A token whose signature no longer matches: what a forged or corrupted token looks like. */
function tampered(token) {
  const [header, payload, signature] = token.split(".");
  const first = signature.charAt(0) === "A" ? "B" : "A";
  return `${header}.${payload}.${first}${signature.slice(1)}`;
}

async function getAuthenticationToken() {
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub: customer }),
  });
  if (!response.ok) throw new Error(`the dev token issuer answered ${response.status}`);
  const { token } = await response.json();
  return tokenMode === "tampered" ? tampered(token) : token;
}

const channel = "BroadcastChannel" in window ? new BroadcastChannel(CHANNEL_NAME) : null;
const tell = (message) => channel && channel.postMessage({ widgetId, customer, ...message });

const widget = createReconnectWidget({
  apiBase: "/api",
  widgetId,
  container: "#chat",
  getAuthenticationToken: customer ? getAuthenticationToken : undefined,
  onContinue: (result) => tell({ type: "continued", result }),
  onStartNew: ({ declinedConversationId }) => tell({ type: "start-new", declinedConversationId }),
});

if (channel) {
  channel.addEventListener("message", (event) => {
    const message = event.data || {};
    const waiting = ["new-offer", "new-started", "chatting"].includes(widget.state);
    if (message.type === "conversation-started" && message.widgetId === widgetId && waiting) {
      widget.showConversation({
        conversationId: message.conversationId,
        agentId: message.agentId,
      });
    }
  });
}

window.chatReconnectWidget = widget; // for poking at it from the dev tools
