// Microsoft's Omnichannel chat SDK (node_modules, pinned in package.json), run in Node with
// jsdom's browser globals: initialize(), then getChatReconnectContext(), against orgUrl.
//
// Input: one JSON argument {orgUrl, orgId, widgetId, reconnectId?, token?, again?, pageUrl}.
// Output: one JSON line on stdout {version, initialized, reconnectEnabled, authenticated,
// context, contextAgain? | error}. Telemetry is disabled, so the only requests made go to orgUrl.
"use strict";

const { JSDOM } = require("jsdom");

const input = JSON.parse(process.argv[2]);
const dom = new JSDOM("<!doctype html><html><body></body></html>", { url: input.pageUrl });
// What the SDK and its bundled dependencies touch at load time. XMLHttpRequest stays out,
// so axios uses Node's http adapter: no CORS here (the browser test covers CORS).
for (const name of ["window", "self", "document", "navigator", "location", "localStorage", "Event", "CustomEvent"]) {
  Object.defineProperty(globalThis, name, { value: dom.window[name], configurable: true });
}

const { OmnichannelChatSDK } = require("@microsoft/omnichannel-chat-sdk");
const { version } = require("@microsoft/omnichannel-chat-sdk/package.json");

async function main() {
  const chatSDKConfig = { telemetry: { disable: true } };
  if (input.token !== undefined) {
    // Resolved at once: initialize() does not wait for getAuthToken (see docs/omnichannel.md).
    chatSDKConfig.getAuthToken = async () => input.token;
  }
  const sdk = new OmnichannelChatSDK(
    { orgUrl: input.orgUrl, orgId: input.orgId, widgetId: input.widgetId },
    chatSDKConfig,
  );
  const result = { version };
  try {
    const config = await sdk.initialize();
    result.initialized = true;
    result.reconnectEnabled = config.LiveWSAndLiveChatEngJoin.msdyn_enablechatreconnect;
    result.authenticated = Boolean(config.LiveChatConfigAuthSettings);
    const params = input.reconnectId === undefined ? {} : { reconnectId: input.reconnectId };
    result.context = await sdk.getChatReconnectContext(params);
    if (input.again) {
      // The page asks a second time: ocsdk keeps the customer's token in headers it shares
      // between calls, so now the link's availability call carries it too.
      result.contextAgain = await sdk.getChatReconnectContext(params);
    }
  } catch (error) {
    result.initialized = result.initialized || false;
    result.error = { message: String(error && error.message), name: error && error.name };
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(String(error && error.stack) + "\n");
    process.exit(1);
  },
);
