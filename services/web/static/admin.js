// Shows a model pull's progress on an engine's page: the pull form is posted with fetch, asking
// for server-sent events; each `progress` event updates the status line and the progress bar
// (as text, never as HTML), `done` reloads the page (which lists the new model), `error` says
// why. Without this script the form still works: the server answers once the pull is over.
"use strict";
(function () {
  const form = document.getElementById("pull");
  if (!form || !window.fetch || !window.TextDecoder) return;
  const box = document.getElementById("pull-progress");
  const status = document.getElementById("pull-status");
  const bar = document.getElementById("pull-bar");
  const button = form.querySelector("button[type=submit]");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    pull();
  });

  async function pull() {
    button.disabled = true;
    box.hidden = false;
    status.className = "";
    show("Starting the pull…");
    bar.removeAttribute("value");
    try {
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
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const ev = parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!ev.data) continue;
          const data = JSON.parse(ev.data);
          if (ev.event === "progress") progress(data);
          if (ev.event === "error") throw new Error(data.detail || "the pull failed");
          if (ev.event === "done") {
            show("Pulled. Reloading the page…");
            bar.max = 1;
            bar.value = 1;
            location.reload();
            return;
          }
        }
      }
      throw new Error("the pull's stream ended early; reload the page to see the node's models");
    } catch (e) {
      status.className = "error";
      show(e.message);
      button.disabled = false;
    }
  }

  function progress(p) {
    let text = p.status || "";
    if (p.total) {
      const completed = p.completed || 0;
      bar.max = p.total;
      bar.value = completed;
      text += " — " + Math.floor((100 * completed) / p.total) + " %";
    } else {
      bar.removeAttribute("value");
    }
    show(text);
  }

  function show(text) {
    status.textContent = text;
  }

  async function refusal(res) {
    try {
      const problem = await res.json();
      return problem.detail || "the pull could not start (" + res.status + ")";
    } catch (_) {
      return "the pull could not start (" + res.status + ")";
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
})();
