"""Dockerfile parsing and image building on the host (the parser and word lexer are pure and shared with fleet)."""
