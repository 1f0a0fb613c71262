"""The simulator: emulated keypad, reader and indicators, acquirer host, script runner."""
