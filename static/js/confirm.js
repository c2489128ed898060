// Forms with data-confirm ask before submitting (CSP forbids inline onsubmit handlers).
(function () {
  document.addEventListener("submit", function (event) {
    const message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
