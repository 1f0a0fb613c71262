"""`pitill drill`: replay an outage timeline against the real terminal with a synthetic shop."""
