"""Readers and writers of spectrum files (auto-detected by content and extension)."""
