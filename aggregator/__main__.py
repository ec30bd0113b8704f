"""`python -m aggregator`: serve the aggregator service (/healthz, /readyz, /metrics on
$AGGREGATOR_PORT)."""

from aggregator.app import create_app
from contracts.runtime.run import serve
from contracts.runtime.settings import Settings

app, _service = create_app(Settings.from_env())
serve(app, name="aggregator", default_port=8003)
