// authgate's sign-in pages, enhanced: forms marked data-enhance are sent with fetch, so an
// error appears in the page's role="alert" element (focused, so screen readers announce it)
// without a reload, and a second click cannot submit twice. Without this script every form
// still works as a plain form post: the gateway answers with a page or a redirect.
(function () {
  "use strict";
  var alertBox = document.querySelector('[role="alert"]');
  function showError(text) {
    if (!alertBox) return;
    alertBox.textContent = text;
    alertBox.hidden = false;
    alertBox.focus();
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-enhance") || !window.fetch) return;
    event.preventDefault();
    var button = form.querySelector('button[type="submit"], button:not([type])');
    if (button) button.disabled = true;
    window
      .fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { accept: "application/json" },
        credentials: "same-origin",
        redirect: "manual",
      })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (answer.redirect) {
            window.location.assign(answer.redirect);
            return;
          }
          if (button) button.disabled = false;
          showError(answer.error || "Something went wrong. Please try again.");
        });
      })
      .catch(function () {
        if (button) button.disabled = false;
        showError("The server could not be reached. Check your connection and try again.");
      });
  });
})();
