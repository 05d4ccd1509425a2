// The demo portal with Microsoft's Omnichannel chat SDK in place of the reference widget.
//
// The SDK (bundled from node_modules by the local host at /dev/omnichannel-chat-sdk.js)
// initializes against this service's Omnichannel routes and resolves the reconnect context
// exactly as it would against Omnichannel. Carrying the chat itself (startChat) needs Azure
// Communication Services, so "Continue" uses this service's widget route instead.
const RECONNECT_PARAM = "oc.reconnectid";
const STATE_KEY = "chatReconnectDemo";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
let stored = {};
try {
  stored = JSON.parse(window.localStorage.getItem(STATE_KEY) || "{}") || {};
} catch {
  stored = {};
}
const widgetId = params.get("widget") || stored.widgetId || "demo";
const customer = params.has("customer")
  ? params.get("customer").trim()
  : stored.authenticated
    ? String(stored.customer || "").trim()
    : "";
const orgUrl = params.get("orgUrl") || `${window.location.origin}/api`;
const reconnectId = params.get(RECONNECT_PARAM);
if (reconnectId !== null) {
  // A reconnect ID is a credential: out of the address bar (and history) at once.
  params.delete(RECONNECT_PARAM);
  const query = params.toString();
  window.history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : ""));
}

function show(status, state) {
  $("sdk-status").textContent = status;
  document.body.dataset.sdkState = state;
}

async function customerToken() {
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub: customer }),
  });
  if (!response.ok) throw new Error(`the dev token issuer answered ${response.status}`);
  return (await response.json()).token;
}

async function continueConversation(id, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const url = `${orgUrl}/widgets/${encodeURIComponent(widgetId)}/reconnect/${encodeURIComponent(id)}`;
  const response = await fetch(url, { method: "POST", headers });
  if (!response.ok) {
    show(`The conversation can no longer be continued (${response.status}).`, "failed");
    return;
  }
  const result = await response.json();
  const agent = result.sameAgent ? `with ${result.agentId}` : "(a new agent will join)";
  show(`Reconnected to your conversation ${agent}.`, "reconnected");
  $("sdk-action").replaceChildren();
}

function offer(id, token) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Continue conversation";
  button.addEventListener("click", () => continueConversation(id, token));
  $("sdk-action").replaceChildren(button);
}

async function main() {
  $("org-url").textContent = orgUrl;
  $("signed-in").textContent = customer ? `Signed in as ${customer}` : "Not signed in";
  const dev = await (await fetch("/dev/omnichannel")).json();
  $("sdk-version").textContent = dev.sdkVersion ? `${dev.sdkVersion}` : "";
  if (!dev.orgId) {
    show("OMNICHANNEL_ORG_ID is not set on the local host.", "failed");
    return;
  }
  // The SDK does not wait for getAuthToken during initialize(): have the token first.
  const token = customer ? await customerToken() : null;
  const { OmnichannelChatSDK } = window.OmnichannelChatSDKBundle;
  const sdk = new OmnichannelChatSDK(
    { orgUrl, orgId: dev.orgId, widgetId },
    { telemetry: { disable: true }, ...(token ? { getAuthToken: async () => token } : {}) },
  );
  await sdk.initialize();
  const context = await sdk.getChatReconnectContext(reconnectId ? { reconnectId } : {});
  $("sdk-context").textContent = JSON.stringify(context, null, 2);
  if (context.redirectURL) {
    show("This chat link has expired.", "redirect");
    const link = document.createElement("a");
    link.href = context.redirectURL;
    link.textContent = "Continue on the page the admin chose";
    $("sdk-action").replaceChildren(link);
  } else if (context.reconnectId) {
    show("Previous conversation found.", "reconnectable");
    offer(context.reconnectId, token);
  } else {
    show("No previous conversation to continue: a new one would start here.", "new");
  }
  window.omnichannelChatSDK = sdk; // for poking at it from the dev tools
}

main().catch((error) => {
  show(`The SDK failed: ${error && error.message}`, "failed");
});
