// faultline's one script: in-place updates on pages that work without it. A form or link marked
// `data-inplace="selector, selector"` is sent in the background; the parts of the page the
// selectors name are swapped for the same parts of the answer, and the address bar follows.
// Anything unexpected falls back to the page the server answered.
(function () {
  "use strict";

  function swap(html, url, selectors) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var fresh = selectors.map(function (s) { return page.querySelector(s); });
    var stale = selectors.map(function (s) { return document.querySelector(s); });
    var whole = fresh.some(function (f) { return !f; }) || stale.some(function (s) { return !s; });
    if (whole) {
      // An error page or another layout: show the answer's main part as it is.
      var main = page.querySelector("main");
      if (!main) { window.location.assign(url); return; }
      document.querySelector("main").replaceWith(main);
    } else {
      stale.forEach(function (s, i) { s.replaceWith(fresh[i]); });
    }
    document.title = page.title;
  }

  function selectorsOf(element) {
    return element.dataset.inplace.split(",").map(function (s) { return s.trim(); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.inplace || form.method.toLowerCase() !== "post") return;
    event.preventDefault();
    var body = new URLSearchParams(new FormData(form));
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        return response.text().then(function (html) {
          swap(html, response.url, selectorsOf(form));
          if (response.ok) history.replaceState(null, "", response.url);
        });
      })
      .catch(function () { form.submit(); });
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-inplace]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    fetch(link.href, { credentials: "same-origin" })
      .then(function (response) {
        return response.text().then(function (html) {
          swap(html, response.url, selectorsOf(link));
          history.pushState(null, "", link.href);
          var target = link.hash && document.getElementById(link.hash.slice(1));
          if (target) target.scrollIntoView();
        });
      })
      .catch(function () { window.location.assign(link.href); });
  });

  // The upload form's drop zone shows that it takes the files dropped on it.
  ["dragenter", "dragover"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var zone = event.target.closest && event.target.closest("label.drop");
      if (zone) zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var zone = event.target.closest && event.target.closest("label.drop");
      if (zone) zone.classList.remove("over");
    });
  });
})();
