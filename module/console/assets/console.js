// The console works without this script; it adds relative times that stay
// current and live updates from the server-sent events of /live.
(function () {
  'use strict';
  var units = [['year', 31536e6], ['month', 2592e6], ['day', 864e5], ['hour', 36e5], ['minute', 6e4]];
  var fmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  function relative(ms) {
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(ms) >= units[i][1] || units[i][0] === 'minute') {
        return fmt.format(Math.round(ms / units[i][1]), units[i][0]);
      }
    }
  }
  function refreshTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      t.textContent = relative(new Date(t.getAttribute('datetime')) - Date.now());
    });
  }
  refreshTimes(document);
  setInterval(function () { refreshTimes(document); }, 30000);

  var live = document.body.getAttribute('data-live');
  if (!live || !window.EventSource) { return; }
  var pending = null;
  function reload() {
    if (document.querySelector('textarea:focus, input:focus')) { return; } // do not disturb typing
    fetch(location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, 'text/html');
        ['main', '#waiting'].forEach(function (sel) {
          var now = document.querySelector(sel), next = doc.querySelector(sel);
          if (now && next) { now.replaceWith(next); }
        });
        refreshTimes(document);
        document.body.setAttribute('data-updated', String(Date.now()));
      });
  }
  var es = new EventSource(live);
  es.addEventListener('request', function () {
    clearTimeout(pending);
    pending = setTimeout(reload, 150);
  });
})();
