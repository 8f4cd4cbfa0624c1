// Posts a form with fetch, asking for server-sent events, and hands each event to `onEvent(name,
// data)` (its data parsed from JSON) as it arrives; resolves when the stream ends. A refusal
// before the stream starts rejects with the service's reason. Shared by chat.js (replies) and
// admin.js (pulls); both still work without any script, as plain forms.
"use strict";
window.OllamaNet = window.OllamaNet || {};
window.OllamaNet.postForEvents = async function (form, onEvent) {
  const res = await fetch(form.action, {
    method: "POST",
    body: new URLSearchParams(new FormData(form)),
    headers: { Accept: "text/event-stream" },
    credentials: "same-origin",
  });
  if (!res.ok || !res.body) throw new Error(await refusal(res));
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const ev = parse(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (ev.data) onEvent(ev.event, JSON.parse(ev.data));
    }
  }

  async function refusal(res) {
    const fallback = "it could not start (" + res.status + ")";
    try {
      return (await res.json()).detail || fallback;
    } catch (_) {
      return fallback;
    }
  }

  function parse(raw) {
    const ev = { event: "message", data: "" };
    for (const line of raw.split("\n")) {
      if (line.startsWith("event:")) ev.event = line.slice(6).trim();
      else if (line.startsWith("data:")) ev.data += line.slice(5).trim();
    }
    return ev;
  }
};
