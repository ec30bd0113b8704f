"""`python -m aggregator`: serve the aggregator service (/healthz, /readyz, /metrics on
$AGGREGATOR_PORT)."""

from aggregator.app import create_app
from contracts.run import serve
from contracts.settings import Settings

app, _service = create_app(Settings.from_env())
serve(app, name="aggregator", default_port=8003)
