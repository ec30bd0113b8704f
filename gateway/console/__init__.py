"""The console: the web pages people use Conveyor through, served by the gateway.

Stack: pages rendered on the server with Litestar's Jinja templates, made live with
htmx (fragments swapped in place, `hx-push-url` so filters and pages live in the URL)
and one small script of our own (static/console.js) for what hypermedia does not do:
the jobs drawer, SSE feeds on single-use tickets, the selection of a grid, charts
(uPlot). Why this and not a single-page app: the team writes Python; the pages read
the same SQL modules the API does, are type-checked with the rest, and need no build
step. htmx, uPlot and Swagger UI come from the npm registry, pinned in
`package-lock.json` and installed by `make install` (`npm ci`) into
`gateway/console/node_modules` (not committed); the gateway serves them as files.

Sign-in exchanges an API key for an HttpOnly session cookie
(gateway/frontdoor/sessions.py); the pages' writes go to the JSON API itself, so a
refusal is the API's problem+json, whose `detail` the page shows.
"""
