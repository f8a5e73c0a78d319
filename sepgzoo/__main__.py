"""`python -m sepgzoo` runs the command-line interface."""

from sepgzoo.cli import main

if __name__ == "__main__":
    main()
