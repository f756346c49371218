"""Report outputs: table rows, file writers and the terminal summary."""
