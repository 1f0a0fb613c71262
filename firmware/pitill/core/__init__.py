"""The pure terminal: state, events, effects, screens and the transition table. No I/O here."""
