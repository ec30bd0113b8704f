"""`python -m mover`: serve the mover service (/healthz, /readyz, /metrics on $MOVER_PORT)."""

from contracts.runtime.run import serve
from contracts.runtime.settings import Settings
from mover.app import create_app

app, _service = create_app(Settings.from_env())
serve(app, name="mover", default_port=8002)
