/* A source's change form: show the origin fields of the chosen kind only, and the signing
   tokens' copy and rotate buttons. Served from static files; no library. */
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var kind = document.getElementById("id_kind");
  if (kind && kind.tagName === "SELECT") {
    var sync = function () {
      document.querySelectorAll("fieldset.origin-kind").forEach(function (fieldset) {
        fieldset.style.display = fieldset.classList.contains("origin-kind-" + kind.value) ? "" : "none";
      });
    };
    kind.addEventListener("change", sync);
    sync();
  }

  var csrf = document.querySelector("input[name=csrfmiddlewaretoken]");
  document.querySelectorAll("button.token-copy").forEach(function (button) {
    button.addEventListener("click", function () {
      // The token is asked for only now (a POST that checks the change permission), and goes
      // to the clipboard, never into the page.
      fetch(button.dataset.url, {method: "POST", credentials: "same-origin",
                                 headers: {"X-CSRFToken": csrf ? csrf.value : ""}})
        .then(function (response) {
          if (!response.ok) { throw new Error(response.status === 403 ? "not allowed" : "failed (" + response.status + ")"); }
          return response.json();
        })
        .then(function (body) { return navigator.clipboard.writeText(body.token); })
        .then(function () { button.textContent = "Copied"; })
        .catch(function (error) { button.textContent = "Copy " + error.message; });
    });
  });
  document.querySelectorAll("button.token-rotate").forEach(function (button) {
    button.addEventListener("click", function (event) {
      var message = "Make a new signing token? The previous newest stays valid until the next rotation; " +
        "older ones stop working now. Unsaved changes on this page are not saved.";
      if (!window.confirm(message)) { event.preventDefault(); }
    });
  });
});
