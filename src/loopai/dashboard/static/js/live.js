// History first, then live: no blank view on load, and no hole between the two.
//
// For each topic the history is read over REST (`GET /api/v1/topics/{topic}/events`, oldest
// first, up to `maxPages` pages); the subscription then resumes from the last cursor read
// (`since`), so the hub replays whatever was published in between. After a reconnect the JS
// client resumes from its cursors; when the hub no longer has every missed event it sends a
// `gap`, the status pill says so, and `onGap` lets the view refetch its state.

import { stats } from './core.js';

async function history(api, topic, limit, maxPages) {
  const events = [];
  let since;
  let latest = null;
  for (let page = 0; page < maxPages; page += 1) {
    const result = await api.topicEvents(topic, { since, limit });
    events.push(...result.events);
    latest = result.latest ?? latest;
    if (result.events.length < limit) break;
    since = result.events[result.events.length - 1].cursor;
  }
  // Resume from the last event read; with none, from the topic's latest (`<epoch>:0-0` for an
  // empty topic), so even a topic that was empty has a cursor to resume from after a cut.
  const cursor = events.length > 0 ? events[events.length - 1].cursor : latest;
  return { events, cursor };
}

/**
 * Follow `topics`: `onEvent(item, {replayed})` for each history event (oldest first) and then
 * each live one, once and in order; `onGap(topic)` after a gap (refetch what you show).
 * `replay: false`: no history, live events from now on (still resumed after a cut).
 */
export async function follow(ctx, topics, { onEvent, onGap = null, limit = 1000, maxPages = 3, replay = true }) {
  const list = Array.isArray(topics) ? topics : [topics];
  const since = {};
  const read = replay
    ? (t) => history(ctx.api, t, limit, maxPages)
    // Live only: start at the topic's latest cursor (a page of one event says which it is).
    : (t) => ctx.api.topicEvents(t, { limit: 1 }).then((page) => ({ events: [], cursor: page.latest }));
  const pages = await Promise.all(list.map((t) => read(t)
    .catch((error) => {
      console.warn(`history of ${t}:`, error.message);
      return { events: [], cursor: null };
    })));
  list.forEach((topic, i) => {
    if (pages[i].cursor) since[topic] = pages[i].cursor;
    for (const event of pages[i].events) {
      stats.events += 1;
      onEvent({ kind: 'event', ...event }, { replayed: true });
    }
  });
  return ctx.hub.subscribe(list, (item) => {
    if (item.kind === 'gap') {
      ctx.continuity.gap(item);
      if (onGap) onGap(item.topic);
      return;
    }
    stats.events += 1;
    ctx.continuity.lastEventAt = Date.now();
    onEvent(item, { replayed: false });
  }, { since });
}

/** `fn` once after the last of a burst of calls within `ms`. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
