// Shows a model pull's progress on an engine's page: the pull form is posted for server-sent
// events (events.js); each `progress` event updates the status line and the progress bar
// (as text, never as HTML), `done` reloads the page (which lists the new model), `error` says
// why. Without this script the form still works: the server answers once the pull is over.
"use strict";
(function () {
  const form = document.getElementById("pull");
  if (!form || !window.OllamaNet || !window.fetch || !window.TextDecoder) return;
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
      let finished = false;
      await window.OllamaNet.postForEvents(form, (event, data) => {
        if (event === "progress") progress(data);
        if (event === "error") throw new Error(data.detail || "the pull failed");
        if (event === "done" && !finished) {
          finished = true;
          show("Pulled. Reloading the page…");
          bar.max = 1;
          bar.value = 1;
          location.reload();
        }
      });
      if (!finished) throw new Error("the pull's stream ended early; reload the page to see the node's models");
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
})();
