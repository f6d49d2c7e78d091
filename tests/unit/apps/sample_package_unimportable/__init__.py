"""Sample package that fails at import: the arbiter check must find ``.web`` without running it."""

raise RuntimeError("sample_package_unimportable must not be imported by check_app_spec")
