// pitill's live mirror: draws what the terminal pushes over one WebSocket, sends keys back.
// Relative URLs only, no libraries: the page works at whatever address pitill serves it from.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $("oled");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(128, 64);
  const MAX_EVENTS = 200;
  let socket = null;
  let control = false;
  let lastBeeps = -1, lastDrawer = -1, lastTransition = 0, lastTimer = null;

  fetch("chart.svg").then((r) => r.text()).then((svg) => { $("chart").innerHTML = svg; });

  function drawBits(b64) {
    const bits = atob(b64);
    const data = image.data;
    for (let i = 0; i < 128 * 64; i++) {
      const on = (bits.charCodeAt(i >> 3) >> (7 - (i & 7))) & 1;
      const v = on ? 255 : 0;
      const o = i * 4;
      data[o] = data[o + 1] = data[o + 2] = v;
      data[o + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  function flash(el) {
    el.classList.add("fired");
    setTimeout(() => el.classList.remove("fired"), 400);
  }

  function setLed(el, color, on) {
    el.classList.toggle("on", on);
    el.setAttribute("aria-label", `${color} LED ${on ? "on" : "off"}`);
  }

  function markPhase(phase, transition) {
    document.querySelectorAll(".chart .state.current").forEach((g) => {
      g.classList.remove("current");
      g.removeAttribute("aria-current");
    });
    const node = $(`state-${phase}`);
    if (node) {
      node.classList.add("current");
      node.setAttribute("aria-current", "true");
    }
    if (transition && transition.n !== lastTransition) {
      lastTransition = transition.n;
      document.querySelectorAll(".chart .edge.last").forEach((e) => e.classList.remove("last"));
      const edge = $(`edge-${transition.from}-${transition.to}`);
      if (edge) {
        edge.classList.add("last");
        clearTimeout(lastTimer);
        lastTimer = setTimeout(() => edge.classList.remove("last"), 1500);
      }
    }
  }

  window.pitillFrames = 0; // frames drawn, and when (the last 1000), for the benchmark
  window.pitillFrameTimes = [];

  function onFrame(f) {
    window.pitillFrames += 1;
    window.pitillFrameTimes.push(performance.now());
    if (window.pitillFrameTimes.length > 1000) window.pitillFrameTimes.shift();
    drawBits(f.bits);
    const status = $("screen-text");
    if (status.textContent !== f.text) status.textContent = f.text;
    $("link").textContent = f.link;
    $("link").dataset.link = f.link;
    $("link-reason").textContent = f.reason ? `(${f.reason})` : "";
    $("backlog").textContent = String(f.backlog);
    $("phase").textContent = f.phase;
    setLed($("led-green"), "green", f.leds[0]);
    setLed($("led-red"), "red", f.leds[1]);
    $("beeps").textContent = String(f.beeps);
    $("drawer-count").textContent = String(f.drawer);
    if (lastBeeps >= 0 && f.beeps !== lastBeeps) flash($("buzzer"));
    if (lastDrawer >= 0 && f.drawer !== lastDrawer) flash($("drawer"));
    lastBeeps = f.beeps; lastDrawer = f.drawer;
    markPhase(f.phase, f.transition);
  }

  function onEvents(items) {
    const list = $("events");
    for (const item of items) {
      const li = document.createElement("li");
      const t = document.createElement("span");
      t.className = "t";
      t.textContent = Number(item.t_s).toFixed(2);
      li.append(t, document.createTextNode(item.line));
      list.prepend(li);
    }
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  }

  function send(message) {
    if (control && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
    }
  }

  function connect() {
    const url = new URL("socket", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url);
    socket.onopen = () => { $("connection").textContent = "live"; };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "hello") {
        control = data.control;
        document.body.classList.toggle("readonly", !control);
      }
      if (data.frame) onFrame(data.frame);
      if (data.events && data.events.length) onEvents(data.events);
    };
    socket.onclose = () => {
      $("connection").textContent = "disconnected: retrying…";
      setTimeout(connect, 1000);
    };
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.key) send({ type: "press", key: button.dataset.key });
    else if (button.dataset.swipe) send({ type: "swipe", card: button.dataset.swipe });
    else if (button.dataset.host) send({ type: "host", mode: button.dataset.host });
  });

  // The simulator's keyboard: digits, Enter OK, Backspace CLEAR, Esc CANCEL, f FN; the hotkeys.
  const KEYS = { Enter: "OK", Backspace: "CLEAR", Escape: "CANCEL", f: "FN" };
  const HOTKEYS = { a: ["swipe", "approved"], d: ["swipe", "declined"], e: ["swipe", "expired"],
    n: ["host", "down"], b: ["host", "blackhole"], s: ["host", "dns-fail"], w: ["host", "slow"],
    u: ["host", "up"] };
  document.addEventListener("keydown", (event) => {
    if (!control || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[0-9]$/.test(event.key)) send({ type: "press", key: event.key });
    else if (KEYS[event.key]) send({ type: "press", key: KEYS[event.key] });
    else if (HOTKEYS[event.key]) {
      const [type, arg] = HOTKEYS[event.key];
      send(type === "swipe" ? { type, card: arg } : { type, mode: arg });
    } else return;
    event.preventDefault();
  });

  connect();
})();
