"""``python -m prefork`` is the ``prefork`` command."""

from prefork.cli import main

if __name__ == "__main__":
    main()
