"""The shell's adapters: each device behind a small Protocol, chosen from the config at the edge."""
