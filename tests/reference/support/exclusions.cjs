// Specs of the reference suite that are not run against Switchboard, each
// with the reason. A spec is excluded when its full name (describe titles and
// the spec title joined by spaces) matches `pattern`. Everything else runs.
//
// The HTTPS specs need no entry: the suite defines them only when it is given
// an HTTPS URL, and run.sh gives it none (see README.md).

"use strict";

module.exports = [
  {
    // ConnectionTests.ts drives HttpConnection (no hub protocol) against the
    // reference server's /echo connection handler. The one spec that only
    // needs a negotiate failing with a body stays in.
    pattern: /^connection (?!with \w+ contains server response in error$)/,
    reason:
      "raw (non-hub) connection: HttpConnection against the reference server's /echo ConnectionHandler; Switchboard serves hubs only",
  },
  {
    // The reference TestHub throws System.InvalidOperationException, and the
    // reference server with detailed errors puts the .NET type name in the
    // text. A Switchboard app server's client-visible errors are hub errors,
    // shown as `HubException: {message}` (the same message and the same text
    // otherwise; tests/js/testhub.test.mjs and streams.test.mjs check it).
    pattern: /^hubConnection using \w+ over \w+ transport rethrows an exception from the server when (invoking|streaming)$/,
    reason:
      ".NET-only type behaviour: the expected text names the .NET exception type the reference hub throws (InvalidOperationException); Switchboard reports hub errors as HubException with the same message",
  },
  {
    pattern: /^WebSockets can be used to connect to SignalR$/,
    reason:
      "raw (non-hub) connection: a bare WebSocket to the reference server's /echo ConnectionHandler; Switchboard serves hubs only",
  },
];
