// The dashboard's entry: sign in, connect, then run the page module of this view
// (`pages/<view>.js`, each exporting `mount(ctx, main)`).

import { describeError, h, start } from './core.js';

const PAGES = {
  overview: () => import('./pages/overview.js'),
  tasks: () => import('./pages/tasks.js'),
  task: () => import('./pages/task.js'),
  errors: () => import('./pages/errors.js'),
};

async function main() {
  const main = document.getElementById('app');
  const view = main.dataset.view;
  try {
    const ctx = await start();
    const page = await (PAGES[view] ?? PAGES.overview)();
    await page.mount(ctx, main);
  } catch (error) {
    console.error(error);
    main.replaceChildren(h('div', { class: 'card error', role: 'alert' },
      h('h2', null, 'The dashboard could not load'), h('p', null, describeError(error))));
  }
}

main();
