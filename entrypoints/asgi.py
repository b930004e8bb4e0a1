"""The ASGI app for gunicorn workers, configured from the environment."""

from tutorlane.entrypoints.settings import Settings
from tutorlane.entrypoints.webhook import RuntimeHolder, create_app

app = create_app(RuntimeHolder(Settings()))
