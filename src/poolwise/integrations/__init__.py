"""Bridges to other libraries. Import the submodule you need; each imports its library lazily."""
