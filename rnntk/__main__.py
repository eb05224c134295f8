"""``python -m rnntk`` = the ``rnntk`` command."""

from rnntk.cli import main

if __name__ == "__main__":
    main()
