// Streaming time series on uPlot (vendored): per-second buckets over a sliding window, drawn
// by the view's render loop (a few times a second), never per event.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { h } from './core.js';

export const COLORS = ['#3b82f6', '#ef4444', '#22c55e', '#f59e0b', '#a855f7', '#06b6d4', '#ec4899', '#84cc16'];

/** Per-second buckets of the last `windowS` seconds (keyed by whole epoch seconds). */
export class SecondBuckets {
  constructor(windowS = 300, make = () => ({})) {
    this.windowS = windowS;
    this.make = make;
    this.map = new Map();
  }

  at(tsMs) {
    const sec = Math.floor(tsMs / 1000);
    let bucket = this.map.get(sec);
    if (!bucket) {
      bucket = this.make();
      this.map.set(sec, bucket);
      this.trim();
    }
    return bucket;
  }

  trim(nowS = Math.floor(Date.now() / 1000)) {
    for (const sec of this.map.keys()) {
      if (sec < nowS - this.windowS) this.map.delete(sec);
    }
  }

  /** Every second of the window up to now (the current, partial one left out). */
  seconds(nowS = Math.floor(Date.now() / 1000)) {
    const out = [];
    for (let s = nowS - this.windowS; s < nowS; s += 1) out.push(s);
    return out;
  }
}

/** The q-quantile (0..1) of a numeric array (sorted in place). */
export function quantile(values, q) {
  if (values.length === 0) return null;
  values.sort((a, b) => a - b);
  const i = Math.min(values.length - 1, Math.max(0, Math.ceil(q * values.length) - 1));
  return values[i];
}

/**
 * A time chart in `container`: `series` is `[{label, color?, unit?}]`; `set(xs, ...ys)` with
 * xs in epoch seconds. Resizes with its container.
 */
export function timeChart(container, { title, series, yLabel = '', height = 180, valueFmt = null }) {
  const box = h('div', { class: 'chart' });
  container.appendChild(box);
  const opts = {
    title,
    width: Math.max(200, box.clientWidth || container.clientWidth || 300),
    height,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { auto: true, range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [
      { stroke: '#888', grid: { stroke: '#8882' } },
      { stroke: '#888', grid: { stroke: '#8882' }, label: yLabel, size: 55 },
    ],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color ?? COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: s.spanGaps ?? false,
        points: { show: s.points ?? false },
        value: valueFmt ? (u, v) => (v === null || v === undefined ? '—' : valueFmt(v)) : undefined,
      })),
    ],
  };
  const empty = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, empty, box);
  // The chart's own cell sets the width (the canvas is absolutely sized, so it never pushes it).
  const resize = () => {
    const width = Math.max(200, Math.floor(box.clientWidth));
    if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height });
  };
  new ResizeObserver(resize).observe(box);
  return {
    plot,
    set(xs, ...ys) {
      plot.setData([xs, ...ys]);
    },
  };
}
