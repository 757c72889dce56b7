// The playground page: builds a rendering URL from the controls (the server checks and signs
// it), renders it (waiting through a background-removal job's 202), and uploads dropped images.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("playground-config").textContent);
  var main = document.querySelector("main");
  var $ = function (id) { return document.getElementById(id); };
  var UPLOAD = "__upload__";
  var state = { sources: {}, upload: null, url: "", seq: 0, run: 0 };

  function option(select, value, text) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = text || value;
    select.appendChild(o);
    return o;
  }

  function fill(select, values, selected) {
    select.textContent = "";
    values.forEach(function (v) { option(select, v); });
    if (selected) { select.value = selected; }
  }

  function show(el, text, kind) {
    el.textContent = text;
    el.className = "status" + (kind ? " " + kind : "");
  }

  function errorText(body, status) {
    if (body && body.error) { return body.error.message + " (" + status + " " + body.error.code + ")"; }
    return "HTTP " + status;
  }

  function mb(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }

  // --- The URL -----------------------------------------------------------------------------

  function query() {
    var parts = [];
    document.querySelectorAll("#params input[data-param]").forEach(function (box) {
      if (!box.checked) { return; }
      var name = box.dataset.param;
      var input = document.querySelector("[data-for='" + name + "']");
      var value = box.dataset.value || (input ? input.value.trim() : "");
      parts.push(name + "=" + encodeURIComponent(value));
    });
    return parts.join("&");
  }

  var pending = null;
  function urlUpdate() {
    clearTimeout(pending);
    pending = setTimeout(urlBuild, 120);
  }

  function urlBuild() {
    var seq = ++state.seq;
    var q = query();
    var note = $("url-note");
    if ($("source").value === UPLOAD) {
      if (!state.upload) { return; }
      urlSet(location.origin + state.upload.render + (q ? "?" + q : ""), false);
      $("copy").disabled = true;
      note.textContent = "A dropped image is kept in the account's uploads, which have no public URL: this one " +
        "works on this page only. Put the image in a source to serve it.";
      return;
    }
    if (!$("source").value || !$("path").value.trim()) {
      urlSet("", false);
      note.textContent = "Pick a source and a path, or drop an image.";
      return;
    }
    post(config.urls.url, {
      account: $("account").value, source: $("source").value, path: $("path").value, query: q
    }).then(function (answer) {
      if (seq !== state.seq) { return; }  // A newer change is on its way.
      if (!answer.ok) {
        urlSet("", false);
        note.textContent = errorText(answer.body, answer.status);
        note.className = "hint error";
        return;
      }
      urlSet(answer.body.url, answer.body.signed);
      $("copy").disabled = false;
      note.className = "hint";
      note.textContent = answer.body.signed ? "Signed with the source's token (s=…, last)." : "";
    });
  }

  function urlSet(url, signed) {
    state.url = url;
    $("url").value = url;
    $("url").dataset.signed = signed ? "true" : "false";
    $("run").disabled = !url;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": main.dataset.csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (json) { return { ok: response.ok, status: response.status, body: json }; });
    });
  }

  // --- Rendering -----------------------------------------------------------------------------

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function run() {
    var url = state.url;
    if (!url) { return; }
    var id = ++state.run;
    var started = performance.now();
    var waited = 0;
    var bar = $("progress");
    var status = $("status");
    var headers = $("source").value === UPLOAD ? { "X-Playground": "1" } : {};
    var elapsed = function () { return ((performance.now() - started) / 1000).toFixed(2) + " s"; };
    bar.hidden = false;
    bar.value = 5;
    show(status, "Rendering…");

    function attempt() {
      return fetch(url, { cache: "no-store", credentials: "same-origin", headers: headers }).then(function (response) {
        if (id !== state.run) { return null; }
        var type = response.headers.get("Content-Type") || "";
        if (response.ok && response.status !== 202 && type.indexOf("image/") === 0) {
          return response.blob().then(function (blob) { return done(response, blob); });
        }
        return response.json().catch(function () { return null; }).then(function (body) {
          if (response.status === 202 && body) {
            waited += 1;
            return wait(body, parseInt(response.headers.get("Retry-After"), 10) || 1).then(attempt);
          }
          if ((response.status === 429 || response.status === 503) && waited < 20) {
            waited += 1;
            show(status, errorText(body, response.status) + " — retrying…");
            return sleep(1000 * Math.min(parseInt(response.headers.get("Retry-After"), 10) || 2, 10)).then(attempt);
          }
          bar.hidden = true;
          show(status, errorText(body, response.status) + " after " + elapsed(), "error");
          return null;
        });
      }).catch(function (exc) {
        bar.hidden = true;
        show(status, "The request failed: " + exc.message, "error");
      });
    }

    // A job is running: its status page says how far it is; the render is asked again once it
    // has ended, or after its Retry-After (whichever comes first, within a minute).
    function wait(body, retryAfter) {
      var until = performance.now() + Math.min(retryAfter, 60) * 1000;
      function poll() {
        if (id !== state.run) { return Promise.resolve(); }
        return fetch(body.status_url, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (job) {
          var phase = job.status === "running" ? 60 : job.status === "queued" ? 25 : 95;
          bar.value = Math.max(bar.value, phase);
          show(status, "Background removal " + job.status + " (job " + body.job.slice(0, 8) + "…) — " + elapsed());
          if (job.status === "done" || job.status === "failed" || performance.now() > until) { return null; }
          return sleep(400).then(poll);
        }).catch(function () { return sleep(Math.max(0, until - performance.now())); });
      }
      return poll();
    }

    function done(response, blob) {
      var img = $("result");
      var previous = img.src;
      img.onload = function () {
        bar.value = 100;
        bar.hidden = true;
        var bits = [response.status + " " + (response.headers.get("Content-Type") || ""),
                    img.naturalWidth + "×" + img.naturalHeight, (blob.size / 1024).toFixed(1) + " KB",
                    "in " + elapsed()];
        if (waited) { bits.push("after waiting for background removal (" + waited + "× 202)"); }
        var model = response.headers.get("X-Bg-Remove-Model");
        if (model) { bits.push("model " + model); }
        show(status, bits.join(" · "), "ok");
        img.dataset.loaded = url;
        if (previous.indexOf("blob:") === 0) { URL.revokeObjectURL(previous); }
      };
      img.src = URL.createObjectURL(blob);
    }

    return attempt();
  }

  // --- Copying -------------------------------------------------------------------------------

  function copy() {
    var text = $("url").value;
    var note = $("url-note");
    var copied = function () { $("copy").textContent = "Copied"; setTimeout(function () { $("copy").textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(copied, function () { legacy(); });
    } else {
      legacy();
    }
    function legacy() {
      $("url").select();
      if (document.execCommand("copy")) { copied(); } else { note.textContent = "Select the URL and copy it."; }
    }
  }

  // --- Dropped images ------------------------------------------------------------------------

  function upload(file) {
    var out = $("upload-status");
    if (!config.mayUpload) {
      show(out, "Dropping an image needs a key with the write or removebg scope.", "error");
      return;
    }
    // The server refuses it too, from its Content-Length, before reading it; said here first so
    // a large file is not sent only to be refused.
    if (file.size > config.maxBytes) {
      show(out, file.name + " is refused: the file is " + mb(file.size) + "; the limit is " + mb(config.maxBytes) + ".", "error");
      return;
    }
    show(out, "Uploading " + file.name + " (" + mb(file.size) + ")…");
    var started = performance.now();
    var account = $("account").value;
    fetch(config.urls.upload + "?account=" + encodeURIComponent(account), {
      method: "POST", credentials: "same-origin", body: file,
      headers: { "Content-Type": "application/octet-stream", "X-CSRFToken": main.dataset.csrf }
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok) {
          show(out, file.name + " is refused: " + errorText(body, response.status), "error");
          return;
        }
        state.upload = body;
        var select = $("source");
        var existing = select.querySelector("option[value='" + UPLOAD + "']");
        (existing || option(select, UPLOAD)).textContent = "Dropped image: " + file.name;
        select.value = UPLOAD;
        $("path").value = body.path;
        $("path").disabled = true;
        show(out, file.name + " uploaded: " + body.width + "×" + body.height + ", " + mb(body.size) + ", in " +
             ((performance.now() - started) / 1000).toFixed(2) + " s.", "ok");
        urlBuild();
        run();
      });
    }).catch(function (exc) { show(out, "The upload failed: " + exc.message, "error"); });
  }

  var drop = $("drop");
  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) { upload(e.dataTransfer.files[0]); }
  });
  $("file").addEventListener("change", function () {
    if (this.files.length) { upload(this.files[0]); }
    this.value = "";
  });

  // --- Accounts and sources ------------------------------------------------------------------

  var sourcesSeq = 0;
  function sourcesLoad() {
    var account = $("account").value;
    var seq = ++sourcesSeq;
    state.upload = null;
    return fetch(config.urls.sources + "?account=" + encodeURIComponent(account), { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; }); })
      .then(function (answer) {
        // An account changed again while this one's sources were on their way: the newer wins,
        // whatever order the answers arrive in.
        if (seq !== sourcesSeq) { return; }
        var select = $("source");
        select.textContent = "";
        state.sources = {};
        if (!answer.ok) { show($("status"), errorText(answer.body, answer.status), "error"); return; }
        answer.body.sources.forEach(function (s) {
          state.sources[s.slug] = s;
          var notes = [s.kind];
          if (s.signed) { notes.push("signed"); }
          if (s.bgRemove) { notes.push("bg-remove on"); }
          option(select, s.slug, s.slug + " (" + notes.join(", ") + ")");
        });
        sourceChanged();
      });
  }

  function sourceChanged() {
    var source = state.sources[$("source").value];
    var list = $("files");
    list.textContent = "";
    $("path").disabled = $("source").value === UPLOAD;
    if (source) {
      source.files.forEach(function (name) { option(list, name); });
      if ($("path").value === "" || (state.upload && $("path").value === state.upload.path)) {
        $("path").value = source.files[0] || "";
      }
    }
    urlBuild();
  }

  config.accounts.forEach(function (a) { option($("account"), a.slug, a.name + " (" + a.slug + ")"); });
  fill($("model"), config.models, config.defaultModel);
  fill($("fit"), config.fits, "clip");
  fill($("trim"), config.trims, "auto");
  fill($("fm"), config.formats, "png");

  $("account").addEventListener("change", sourcesLoad);
  $("source").addEventListener("change", sourceChanged);
  $("path").addEventListener("input", urlUpdate);
  document.querySelectorAll("#params input, #params select").forEach(function (el) {
    el.addEventListener("input", urlUpdate);
    el.addEventListener("change", urlUpdate);
  });
  $("copy").addEventListener("click", copy);
  $("run").addEventListener("click", run);
  sourcesLoad();
})();
