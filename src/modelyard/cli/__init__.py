"""The `modelyard` command line: thin commands that parse, call one service, and render."""
