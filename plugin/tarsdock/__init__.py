"""tarsdock: run Tars services in Docker containers under supervisord or systemd."""

__version__ = "0.1.0"
