// The publish contract every bench origin shares with Switchboard's
// `benchhub`: `POST /publish` with {rate, seconds, size, stream, groups}
// sends paced messages `[stream, seq, sentMicros, pad]` to everyone (one
// stream) or to a random group per message (group i is stream + i), and
// answers {sent, failed, streams: [[stream, count]], seconds}.
"use strict";

// How often the publisher wakes up to send what is due (as benchhub does).
const TICK_MS = 1;
// Longest publish accepted, so a mistyped request cannot run for hours.
const MAX_SECONDS = 600;

/** Wall-clock microseconds since the Unix epoch. */
function unixMicros() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Checks a publish request; returns an error text or null. */
function invalid(request) {
  if (!(request.rate > 0 && Number.isFinite(request.rate))) {
    return `rate must be a positive number, not ${request.rate}`;
  }
  if (!(request.seconds > 0 && request.seconds <= MAX_SECONDS)) {
    return `seconds must be in (0, ${MAX_SECONDS}], not ${request.seconds}`;
  }
  if (!Number.isInteger(request.size) || request.size < 0) {
    return `size must be a byte count, not ${request.size}`;
  }
  return null;
}

/**
 * Runs one paced publish. `send(batch)` gets the messages due at one tick,
 * each {group: name or null, args: [stream, seq, sentMicros, pad]}, and
 * resolves to how many of them failed; sends are never overlapped, so a
 * slow one makes the next tick's batch larger instead of reordering.
 */
async function pace(request, send) {
  const pad = "x".repeat(request.size);
  const groups = request.groups || [];
  const total = Math.max(1, Math.round(request.rate * request.seconds));
  const seqs = new Map();
  let sent = 0;
  let failed = 0;
  const started = performance.now();
  while (sent + failed < total) {
    const elapsed = (performance.now() - started) / 1000;
    const due = Math.min(total, Math.floor(elapsed * request.rate) + 1);
    const batch = [];
    for (let n = sent + failed; n < due; n++) {
      const i = groups.length ? Math.floor(Math.random() * groups.length) : 0;
      const stream = request.stream + i;
      const seq = seqs.get(stream) || 0;
      seqs.set(stream, seq + 1);
      batch.push({ group: groups.length ? groups[i] : null, args: [stream, seq, unixMicros(), pad] });
    }
    if (batch.length) {
      const lost = await send(batch);
      failed += lost;
      sent += batch.length - lost;
    }
    if (sent + failed < total) {
      await new Promise((resolve) => setTimeout(resolve, TICK_MS));
    }
  }
  return {
    sent,
    failed,
    streams: [...seqs.entries()].sort((a, b) => a[0] - b[0]),
    seconds: (performance.now() - started) / 1000,
  };
}

/** Reads a JSON request body. */
function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (error) {
        reject(error);
      }
    });
    req.on("error", reject);
  });
}

/** Serves `POST /publish` on `req` with `send` as in `pace`. */
async function handlePublish(req, res, send) {
  let request;
  try {
    request = await readJson(req);
  } catch (error) {
    res.writeHead(400).end(`publish body is not JSON: ${error.message}`);
    return;
  }
  const why = invalid(request);
  if (why) {
    res.writeHead(400).end(why);
    return;
  }
  const result = await pace(request, send);
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result));
}

module.exports = { handlePublish, readJson, unixMicros };
