"""``python -m cli`` runs the ``admm-attack`` command line."""

from cli.main import main

if __name__ == "__main__":
    main()
