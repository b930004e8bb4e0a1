"""The ASGI app for gunicorn workers, configured from the environment."""

from tutorlane.entrypoints.logs import configure_logging
from tutorlane.entrypoints.settings import Settings
from tutorlane.entrypoints.webhook import RuntimeHolder, create_app

# A gunicorn worker does not run the command line, which sets logging up: do the
# same here, so that each worker's start and stop lines reach the log.
configure_logging()

app = create_app(RuntimeHolder(Settings()))
