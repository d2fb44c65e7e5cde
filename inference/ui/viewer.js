/**
 * The image viewer of the station's page and the radiologist's page: the 8-bit preview in a canvas through a
 * window/level table, with zoom, pan, invert and the AI heatmap on top. One copy, served by both servers at
 * /shared/viewer.js; each page passes its words and, where it needs one, its own way of fetching an image.
 * It adds its own toolbar, image and heatmap controls to the element the page gives it; their words are keys of
 * viewer-words.js (data-i18n*), put in the page's language with the rest of the page.
 */

const $ = (selector) => document.querySelector(selector);

const MARKUP = `
<div class="toolbar" role="toolbar" data-i18n-aria-label="toolsLabel">
  <button type="button" class="tool" data-tool="wl" aria-pressed="true" data-i18n-title="toolWlTitle">
    <svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="8.5" fill="none" stroke="currentColor" stroke-width="2"/><path d="M12 3.5a8.5 8.5 0 0 1 0 17z" fill="currentColor"/></svg>
    <span data-i18n="toolWl"></span>
  </button>
  <button type="button" class="tool" data-tool="pan" aria-pressed="false" data-i18n-title="toolPanTitle">
    <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 2v20M2 12h20M12 2l-3 3M12 2l3 3M12 22l-3-3M12 22l3-3M2 12l3-3M2 12l3 3M22 12l-3-3M22 12l-3 3" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>
    <span data-i18n="toolPan"></span>
  </button>
  <button type="button" class="tool" data-tool="zoom" aria-pressed="false" data-i18n-title="toolZoomTitle">
    <svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="10" cy="10" r="6.5" fill="none" stroke="currentColor" stroke-width="2"/><path d="M15 15l6 6M10 7v6M7 10h6" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>
    <span data-i18n="toolZoom"></span>
  </button>
  <span class="sep" aria-hidden="true"></span>
  <button type="button" id="invert" aria-pressed="false">
    <svg viewBox="0 0 24 24" aria-hidden="true"><rect x="3" y="3" width="18" height="18" rx="3" fill="none" stroke="currentColor" stroke-width="2"/><path d="M3 21 21 3v15a3 3 0 0 1-3 3z" fill="currentColor"/></svg>
    <span data-i18n="invert"></span>
  </button>
  <button type="button" id="reset" data-i18n-title="resetTitle">
    <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 12a8 8 0 1 0 2.5-5.8M4 4v5h5" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></svg>
    <span data-i18n="reset"></span>
  </button>
</div>
<div class="viewport" id="viewport" tabindex="0" role="group" data-state="empty">
  <canvas id="image-canvas"></canvas>
  <canvas id="heatmap-canvas" class="heatmap" hidden></canvas>
  <div class="readout readout-wl" id="wl-readout" aria-live="off"><span id="wl-text"></span> <span id="zoom-text"></span></div>
  <div class="readout readout-caption" id="heatmap-caption" hidden><span class="legend" aria-hidden="true"></span><span data-i18n="heatmapCaption"></span></div>
  <button type="button" class="viewer-msg" id="viewer-msg" hidden></button>
</div>
<div class="viewer-foot">
  <button type="button" id="heatmap-toggle" class="heatmap-toggle" aria-pressed="false" data-i18n-title="heatmapTitle">
    <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 2c1 4 6 6 6 12a6 6 0 0 1-12 0c0-3 1.5-4.5 3-6 0 2 1 3 2 3 0-3-1-6 1-9z" fill="currentColor"/></svg>
    <span data-i18n="heatmap"></span>
  </button>
  <label class="opacity"><span data-i18n="opacity"></span>
    <input type="range" id="heatmap-opacity" min="0" max="100" step="5" value="50">
    <output id="opacity-value" for="heatmap-opacity">50%</output>
  </label>
  <span class="heatmap-none" id="heatmap-none" hidden></span>
</div>
`;

async function plainImage(url) {
  const img = new Image();
  img.decoding = 'async';
  img.src = url;
  await img.decode();
  return img;
}

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
const DEFAULT_W = 256;
const DEFAULT_L = 128;

/** The 8-bit preview in a canvas through a window/level LUT, with zoom, pan, invert and the heatmap on top. */
export class Viewer {
  /**
   * @param {object} options
   * @param {(key: string, params?: object) => string} options.t the page's words, by key
   * @param {(x: number, digits: number) => string} options.formatDecimal a decimal as the page's language writes it
   * @param {(url: string) => Promise<HTMLImageElement>} [options.loadImage] how an image is fetched (the radiologist's
   *   page sends its session token); default: a plain <img>
   * @param {(instance: object) => string} [options.emptyMessage] the word key shown for an instance without an image
   * @param {HTMLElement} options.mount where the toolbar, the image and the heatmap controls go (after what it holds)
   */
  constructor({ t, formatDecimal, loadImage = plainImage, emptyMessage = () => 'noImage', mount }) {
    mount.insertAdjacentHTML('beforeend', MARKUP);
    this.t = t;
    this.formatDecimal = formatDecimal;
    this.loadImage = loadImage;
    this.emptyMessage = emptyMessage;
    this.viewport = $('#viewport');
    this.canvas = $('#image-canvas');
    this.overlay = $('#heatmap-canvas');
    this.ctx = this.canvas.getContext('2d');
    this.octx = this.overlay.getContext('2d');
    this.lutCanvas = document.createElement('canvas');
    this.lctx = this.lutCanvas.getContext('2d');
    this.message = $('#viewer-msg');
    this.src = null;
    this.heat = null;
    this.url = null;
    this.heatUrl = null;
    this.token = 0;
    this.heatToken = 0;
    this.tool = 'wl';
    this.heatOn = false;
    this.opacity = 0.5;
    this.space = false;
    this.hover = false;
    this.drag = null;
    this.raf = 0;
    this.resetView();
    this.#bind();
    new ResizeObserver(() => this.#resize()).observe(this.viewport);
  }

  resetView() {
    this.ww = DEFAULT_W;
    this.wl = DEFAULT_L;
    this.invert = false;
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.lutDirty = true;
    $('#invert').setAttribute('aria-pressed', 'false');
    this.schedule();
  }

  /** Shows an instance's preview and heatmap; the same URLs again keep the current view. */
  show(instance) {
    const url = instance?.previewUrl ?? null;
    const heatUrl = instance?.heatmapUrl ?? null;
    this.pendingMessage = !instance || url ? 'noImage' : this.emptyMessage(instance);
    if (url !== this.url) {
      this.url = url;
      this.src = null;
      this.resetView();
      if (url) void this.#load(url);
      else this.#state('empty');
    } else if (!url) this.#state('empty');
    if (heatUrl !== this.heatUrl) {
      this.heatUrl = heatUrl;
      this.heat = null;
      if (heatUrl) void this.#loadHeat(heatUrl);
    }
    this.#heatControls();
    this.schedule();
  }

  async #load(url) {
    const token = ++this.token;
    this.#state('loading');
    try {
      const img = await this.loadImage(url);
      if (token !== this.token) return;
      const w = img.naturalWidth;
      const hgt = img.naturalHeight;
      const scratch = document.createElement('canvas');
      scratch.width = w;
      scratch.height = hgt;
      const sctx = scratch.getContext('2d', { willReadFrequently: true });
      sctx.drawImage(img, 0, 0);
      const rgba = sctx.getImageData(0, 0, w, hgt).data;
      const grey = new Uint8Array(w * hgt);
      for (let i = 0, j = 0; i < grey.length; i++, j += 4) grey[i] = rgba[j];
      const out = new ImageData(w, hgt);
      out.data.fill(255);
      this.lutCanvas.width = w;
      this.lutCanvas.height = hgt;
      this.src = { w, h: hgt, grey, out };
      this.lutDirty = true;
      this.#state('ready');
      this.schedule();
    } catch {
      if (token === this.token) this.#state('error');
    }
  }

  async #loadHeat(url) {
    const token = ++this.heatToken;
    this.overlay.dataset.loaded = 'false';
    try {
      const img = await this.loadImage(url);
      if (token !== this.heatToken) return;
      this.heat = img;
      this.overlay.dataset.loaded = 'true';
      this.#heatControls();
      this.schedule();
    } catch {
      if (token === this.heatToken) this.heat = null;
    }
  }

  #state(value) {
    this.viewport.dataset.state = value;
    for (const b of document.querySelectorAll('.toolbar button')) b.disabled = value !== 'ready';
    const key = value === 'loading' ? 'imageLoading' : value === 'error' ? 'imageLoadFailed' : value === 'empty' ? (this.pendingMessage ?? 'noImage') : null;
    this.message.hidden = !key;
    this.message.disabled = value !== 'error';
    this.message.textContent = key ? this.t(key) : '';
    if (value !== 'ready') this.schedule();
  }

  /** Words in the viewer follow the language. */
  relabel() {
    this.#state(this.viewport.dataset.state);
    this.#heatControls();
    this.schedule();
  }

  #heatControls() {
    const available = Boolean(this.heatUrl);
    const toggle = $('#heatmap-toggle');
    toggle.disabled = !available;
    toggle.setAttribute('aria-pressed', String(this.heatOn && available));
    $('#heatmap-opacity').disabled = !available || !this.heatOn;
    const none = $('#heatmap-none');
    none.hidden = available || !this.url;
    none.textContent = this.t('heatmapNone');
    const shown = available && this.heatOn && Boolean(this.heat) && Boolean(this.src);
    this.overlay.hidden = !shown;
    $('#heatmap-caption').hidden = !shown;
    this.overlay.style.opacity = String(this.opacity);
    $('#opacity-value').textContent = `${Math.round(this.opacity * 100)}%`;
  }

  setTool(tool) {
    this.tool = tool;
    this.viewport.dataset.tool = tool;
    for (const b of document.querySelectorAll('[data-tool]')) b.setAttribute('aria-pressed', String(b.dataset.tool === tool));
  }

  toggleInvert() {
    this.invert = !this.invert;
    $('#invert').setAttribute('aria-pressed', String(this.invert));
    this.lutDirty = true;
    this.schedule();
  }

  #resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.viewport.clientWidth * dpr));
    const hgt = Math.max(1, Math.round(this.viewport.clientHeight * dpr));
    for (const c of [this.canvas, this.overlay]) {
      if (c.width !== w || c.height !== hgt) {
        c.width = w;
        c.height = hgt;
      }
    }
    this.render();
  }

  /** Where the image sits in the viewport, in CSS pixels: fitted, then zoomed and panned. */
  #geometry() {
    const vw = this.viewport.clientWidth;
    const vh = this.viewport.clientHeight;
    const { w, h: hgt } = this.src;
    const s = Math.min(vw / w, vh / hgt) * this.zoom;
    return { s, x: (vw - w * s) / 2 + this.panX, y: (vh - hgt * s) / 2 + this.panY, vw, vh };
  }

  schedule() {
    if (!this.raf) {
      this.raf = requestAnimationFrame(() => {
        this.raf = 0;
        this.render();
      });
    }
  }

  #applyLut() {
    const lut = new Uint8ClampedArray(256);
    const lower = this.wl - this.ww / 2;
    const k = 255 / Math.max(1, this.ww - 1);
    for (let v = 0; v < 256; v++) {
      const o = Math.round(clamp((v - lower) * k, 0, 255));
      lut[v] = this.invert ? 255 - o : o;
    }
    const { grey, out } = this.src;
    const d = out.data;
    for (let i = 0, j = 0; i < grey.length; i++, j += 4) {
      const v = lut[grey[i]];
      d[j] = v;
      d[j + 1] = v;
      d[j + 2] = v;
    }
    this.lctx.putImageData(out, 0, 0);
    this.lutDirty = false;
  }

  render() {
    const dpr = window.devicePixelRatio || 1;
    const { ctx, octx } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    octx.setTransform(1, 0, 0, 1, 0, 0);
    octx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    if (this.src) {
      if (this.lutDirty) this.#applyLut();
      const g = this.#geometry();
      ctx.imageSmoothingEnabled = g.s < 4;
      ctx.imageSmoothingQuality = 'medium';
      ctx.setTransform(dpr * g.s, 0, 0, dpr * g.s, dpr * g.x, dpr * g.y);
      ctx.drawImage(this.lutCanvas, 0, 0);
      if (this.heat && this.heatOn) {
        octx.imageSmoothingEnabled = true;
        octx.setTransform(dpr * g.s, 0, 0, dpr * g.s, dpr * g.x, dpr * g.y);
        octx.drawImage(this.heat, 0, 0, this.src.w, this.src.h);
      }
    }
    this.#heatControls();
    const ready = Boolean(this.src);
    $('#wl-readout').hidden = !ready;
    $('#wl-text').textContent = this.t('wlReadout', { w: Math.round(this.ww), l: Math.round(this.wl) });
    $('#zoom-text').textContent = this.t('zoomReadout', { z: this.formatDecimal(this.zoom, 1) });
    this.viewport.setAttribute('aria-label', `${this.t('viewerLabel')} — ${this.t('wlReadout', { w: Math.round(this.ww), l: Math.round(this.wl) })}`);
  }

  /** Zooms by `factor` keeping the image point under (clientX, clientY) in place. */
  zoomAt(clientX, clientY, factor) {
    if (!this.src) return;
    const rect = this.viewport.getBoundingClientRect();
    const px = clientX - rect.left;
    const py = clientY - rect.top;
    const g = this.#geometry();
    const ix = (px - g.x) / g.s;
    const iy = (py - g.y) / g.s;
    this.zoom = clamp(this.zoom * factor, 0.5, 12);
    const s = Math.min(g.vw / this.src.w, g.vh / this.src.h) * this.zoom;
    this.panX = px - ix * s - (g.vw - this.src.w * s) / 2;
    this.panY = py - iy * s - (g.vh - this.src.h * s) / 2;
    this.schedule();
  }

  #zoomCentre(factor) {
    const rect = this.viewport.getBoundingClientRect();
    this.zoomAt(rect.left + rect.width / 2, rect.top + rect.height / 2, factor);
  }

  #bind() {
    const vp = this.viewport;
    vp.dataset.tool = this.tool;
    vp.addEventListener('contextmenu', (e) => e.preventDefault());
    vp.addEventListener('pointerenter', () => (this.hover = true));
    vp.addEventListener('pointerleave', () => (this.hover = false));
    vp.addEventListener('pointerdown', (e) => {
      if (!this.src) return;
      const mode = e.button === 1 || e.button === 2 || (e.button === 0 && this.space) ? 'pan' : e.button === 0 ? this.tool : null;
      if (!mode) return;
      e.preventDefault();
      vp.focus({ preventScroll: true });
      vp.setPointerCapture(e.pointerId);
      this.drag = { mode, id: e.pointerId, x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY, moved: false };
      vp.dataset.dragging = mode;
    });
    vp.addEventListener('pointermove', (e) => {
      const d = this.drag;
      if (!d || d.id !== e.pointerId) return;
      const dx = e.clientX - d.x;
      const dy = e.clientY - d.y;
      d.x = e.clientX;
      d.y = e.clientY;
      if (Math.abs(e.clientX - d.x0) + Math.abs(e.clientY - d.y0) > 3) d.moved = true;
      if (d.mode === 'wl') {
        // Horizontal: width; vertical: level (down = higher level = darker image).
        this.ww = clamp(this.ww + dx, 2, 512);
        this.wl = clamp(this.wl + dy, -128, 384);
        this.lutDirty = true;
      } else if (d.mode === 'pan') {
        this.panX += dx;
        this.panY += dy;
      } else if (d.mode === 'zoom') {
        this.zoomAt(d.x0, d.y0, Math.exp(-dy * 0.01));
      }
      this.schedule();
    });
    const end = (e) => {
      const d = this.drag;
      if (!d || d.id !== e.pointerId) return;
      if (d.mode === 'zoom' && !d.moved && e.type === 'pointerup') this.zoomAt(e.clientX, e.clientY, e.shiftKey ? 1 / 1.5 : 1.5);
      this.drag = null;
      delete vp.dataset.dragging;
    };
    vp.addEventListener('pointerup', end);
    vp.addEventListener('pointercancel', end);
    vp.addEventListener(
      'wheel',
      (e) => {
        if (!this.src) return;
        e.preventDefault();
        this.zoomAt(e.clientX, e.clientY, e.deltaY < 0 ? 1.15 : 1 / 1.15);
      },
      { passive: false },
    );
    vp.addEventListener('keydown', (e) => {
      if (!this.src) return;
      const step = 40;
      const keys = {
        '+': () => this.#zoomCentre(1.25),
        '=': () => this.#zoomCentre(1.25),
        '-': () => this.#zoomCentre(1 / 1.25),
        i: () => this.toggleInvert(),
        r: () => this.resetView(),
        ArrowLeft: () => (this.panX += step),
        ArrowRight: () => (this.panX -= step),
        ArrowUp: () => (this.panY += step),
        ArrowDown: () => (this.panY -= step),
      };
      const action = keys[e.key];
      if (action) {
        e.preventDefault();
        action();
        this.schedule();
      }
    });
    const typing = (el) => el instanceof HTMLElement && el.matches('input, textarea, select, button, [role="option"]');
    window.addEventListener('keydown', (e) => {
      if (e.code === 'Space' && !this.space && (this.hover || document.activeElement === vp) && !typing(document.activeElement)) {
        e.preventDefault();
        this.space = true;
        vp.dataset.space = 'true';
      }
    });
    window.addEventListener('keyup', (e) => {
      if (e.code === 'Space') {
        this.space = false;
        delete vp.dataset.space;
      }
    });
    window.addEventListener('blur', () => {
      this.space = false;
      delete vp.dataset.space;
    });
    this.message.addEventListener('click', () => {
      if (this.viewport.dataset.state === 'error' && this.url) void this.#load(this.url);
    });

    for (const b of document.querySelectorAll('[data-tool]')) b.addEventListener('click', () => this.setTool(b.dataset.tool));
    $('#invert').addEventListener('click', () => this.toggleInvert());
    $('#reset').addEventListener('click', () => this.resetView());
    $('#heatmap-toggle').addEventListener('click', () => {
      this.heatOn = !this.heatOn;
      this.#heatControls();
      this.schedule();
    });
    $('#heatmap-opacity').addEventListener('input', (e) => {
      this.opacity = Number(e.target.value) / 100;
      this.#heatControls();
    });
  }
}
