"""An app module whose import fails at run time (the arbiter's static check passes)."""

import os

SETTING = int(os.environ.get("PREFORK_TEST_REQUIRED_NUMBER", "not a number"))


async def app(scope, receive, send):
    raise AssertionError("never reached")
