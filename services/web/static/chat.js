// Streams a reply into the conversation page: a form marked `data-stream` (send, edit,
// regenerate) is posted for server-sent events (events.js), and each `delta` is appended
// as text (never as HTML). When the reply is done the page is reloaded, so that the server
// renders it (Markdown, made safe). Without this script the forms still work: the server answers
// once the reply is complete. The stop form is a plain form either way.
// It also follows the processing of attached documents, updating each one's status in place, and
// on a phone-sized screen folds the sidebar so that the conversation comes first.
"use strict";
(function () {
  const sidebar = document.querySelector("details.sidebar");
  if (sidebar && window.matchMedia("(max-width: 48rem)").matches) sidebar.open = false;
  if (!window.OllamaNet || !window.fetch || !window.TextDecoder) return;
  followDocuments();
  for (const form of document.querySelectorAll("form[data-stream]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      stream(form);
    });
  }

  async function stream(form) {
    const button = form.querySelector("button");
    button.disabled = true;
    const list = document.getElementById("messages");
    const reply = item("assistant", "");
    if (form.elements.content) list.append(item("user", form.elements.content.value));
    list.append(reply);
    const text = reply.querySelector(".content");
    try {
      await window.OllamaNet.postForEvents(form, (event, data) => {
        if (event === "delta") text.textContent += data.content || "";
        if (event === "error") throw new Error(data.detail || "the reply failed");
      });
      location.reload();
    } catch (e) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = e.message;
      reply.append(p);
      button.disabled = false;
    }
  }

  // While a document is pending or processing, asks for the documents' states now and then.
  function followDocuments() {
    const list = document.querySelector(".documents[data-processing]");
    const conversation = document.getElementById("conversation");
    if (!list || !conversation) return;
    const url = "/chat/" + conversation.dataset.id + "/documents";
    const poll = async () => {
      let documents;
      try {
        const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!res.ok) return;
        documents = await res.json();
      } catch (e) {
        setTimeout(poll, 3000);
        return;
      }
      let busy = false;
      for (const d of documents) {
        const status = document.querySelector("#d-" + d.id + " [data-status]");
        if (status && status.textContent !== d.status) {
          status.textContent = d.status;
          status.className = "status status-" + d.status;
        }
        if (d.status === "failed" && d.error && status && !status.nextElementSibling?.classList.contains("error")) {
          const why = document.createElement("span");
          why.className = "error";
          why.textContent = d.error;
          status.after(why);
        }
        busy ||= d.status === "pending" || d.status === "processing";
      }
      if (busy) setTimeout(poll, 1000);
      else list.removeAttribute("data-processing");
    };
    setTimeout(poll, 1000);
  }

  function item(role, content) {
    const li = document.createElement("li");
    li.className = "message " + role;
    const who = document.createElement("div");
    who.className = "role";
    who.textContent = role === "assistant" ? "Model" : "You";
    const body = document.createElement("div");
    body.className = "content";
    body.textContent = content;
    li.append(who, body);
    return li;
  }
})();
