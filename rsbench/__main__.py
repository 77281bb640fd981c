"""``python -m rsbench``: the same CLI as the ``rsbench`` command."""

from rsbench.cli import main

if __name__ == "__main__":
    main()
