"""The ASGI app for gunicorn workers, configured from the environment."""

import logging

from tutorlane.entrypoints.settings import Settings
from tutorlane.entrypoints.webhook import RuntimeHolder, create_app

# A gunicorn worker does not run the command line, which sets logging up: do the
# same here, so that each worker's start and stop lines reach the log.
logging.basicConfig(
    level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

app = create_app(RuntimeHolder(Settings()))
