"""``python -m sspnet_cli``: the same as the ``sspnet`` command."""
from sspnet_cli.cli.app import main

if __name__ == "__main__":
    main()
