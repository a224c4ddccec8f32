"""The live dashboard: HTML pages, their scripts and styles, served by the hub itself.

`routes.ROUTES` are the pages and the static files (the JS client's modules, vendored uPlot
and Swagger UI); `routes.swagger_plugin()` serves the API docs from the vendored assets."""
