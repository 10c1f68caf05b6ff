"""An example toxbench plugin (see CONTRIBUTING.md): nothing here is imported until toxbench
asks for one of the entries its ``pyproject.toml`` declares."""
