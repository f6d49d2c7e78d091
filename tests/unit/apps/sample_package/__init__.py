"""Sample package for tests: the app lives in the ``web`` submodule."""
