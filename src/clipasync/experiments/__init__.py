"""Experiments: YAML schema and loading, the grid of runs, building and executing
them, run directories, and the Ray backend (DESIGN.md floor 4)."""
