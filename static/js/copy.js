// Buttons with data-copy="<css selector>" copy that element's text (or an input's value) to
// the clipboard. A static file: the CSP forbids inline scripts and handlers.
(function () {
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    const text = "value" in source ? source.value : source.textContent.trim();
    const done = function () {
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { select(source); });
    } else {
      select(source);
      if (document.execCommand && document.execCommand("copy")) done();
    }
  });
  function select(node) {
    if (node.select) { node.select(); return; }
    const range = document.createRange();
    range.selectNodeContents(node);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
})();
