"""A sample prismrag plugin."""
