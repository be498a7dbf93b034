// The traveler's Print button (a script file: the Content-Security-Policy allows no inline
// handlers).
document.addEventListener("click", function (event) {
  if (event.target.closest && event.target.closest("[data-print]")) window.print();
});
