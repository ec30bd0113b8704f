"""`python -m ingest`: serve the ingest service (/healthz, /readyz, /metrics on $INGEST_PORT)."""

from contracts.runtime.run import serve
from contracts.runtime.settings import Settings
from ingest.app import create_app

app, _service = create_app(Settings.from_env())
serve(app, name="ingest", default_port=8001)
