"""The built-in demo: a simulated social app with injected incidents."""
