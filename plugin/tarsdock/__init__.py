"""tarsdock: run Tars services in Docker containers under supervisord or systemd."""

try:
    # written from git by setuptools-scm when tarsdock is built or installed (pyproject.toml);
    # read as a module, not through importlib.metadata, which costs every start its imports
    from tarsdock._version import __version__ as __version__
except ImportError:
    # a tree never built or installed: an unpacked `git archive` on PYTHONPATH, as
    # bench/bench_versions.py --against runs one
    __version__ = "0+unknown"
