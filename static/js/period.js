// Period picker: show the date fields that matter for the chosen period; works without JS too.
(function () {
  for (const form of document.querySelectorAll("form[data-period-picker]")) {
    const select = form.querySelector("select[name=period]");
    const sync = () => {
      const custom = select.value === "custom";
      for (const el of form.querySelectorAll("[data-custom]")) el.hidden = !custom;
      for (const el of form.querySelectorAll("[data-anchor]")) el.hidden = custom;
      for (const el of form.querySelectorAll("[data-custom] input")) el.disabled = !custom;
      for (const el of form.querySelectorAll("[data-anchor] input")) el.disabled = custom;
    };
    select.addEventListener("change", sync);
    sync();
  }
})();
