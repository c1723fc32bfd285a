"""Presentation: tables and JSON output (pure: data in, text out)."""
